"""Which variants the app picks by default, and how it labels them -- decided from the registry.

A first comparison should answer within seconds on a laptop CPU, so the default selection is the
available base with its LoRA adapters (one batched ``generate`` serves them all), topped up with
other fast variants. Nothing is hard-coded: adapters that appear in ``assets/adapters/`` join the
default by themselves, and without them the selection falls back to whatever fast variants exist.
Variants that are slow on this device (bitsandbytes' LLM.int8 on a CPU) are labelled as such, with
the speed measured in this process once they have run.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable

from ..generation.answers import Answer, Status
from .loading import resolve_dtype
from .manager import ModelManager
from .registry import Availability, Registry, Variant, availability

DEFAULT_COUNT = 3
MAX_VARIANTS = 4  # columns side by side that still read well
# Above this many parameters a variant takes more than ~10 s for an answer on the device.
FAST_PARAMS = {"cpu": 1_000_000_000, "cuda": 15_000_000_000}
# Quantizations whose kernels are much slower than bf16 on a device, and what to say about them.
SLOW_KERNELS = {("cpu", "int8"): "LLM.int8 on CPU, 2-3× slower than bf16"}
MIN_TOKENS_FOR_SPEED = 8  # shorter answers say little about decode speed
SHORT_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def slow_reason(variant: Variant, device: str) -> str | None:
    return SLOW_KERNELS.get((device_kind(device), variant.quantization))


def is_fast(variant: Variant, manager: ModelManager, status: Availability) -> bool:
    """Available, of a size the device answers quickly, and without slow kernels."""
    if not status.ok or slow_reason(variant, manager.device):
        return False
    needed = manager.estimate_for(variant)
    return needed is not None and needed.params <= FAST_PARAMS[device_kind(manager.device)]


def default_variants(registry: Registry, manager: ModelManager, count: int = DEFAULT_COUNT) -> list[str]:
    """The first base among the fast variants, then the variants batched with it (adapters first), then the rest."""
    statuses = {variant.id: availability(variant) for variant in registry}
    fast = [variant for variant in registry if is_fast(variant, manager, statuses[variant.id])]
    anchors = [v for v in fast if not v.adapter and v.quantization == "none"] or fast
    if not anchors:
        return []
    key = manager.key_for(anchors[0])
    batched = [v for v in fast if manager.key_for(v) == key and v is not anchors[0]]
    ranked = [anchors[0], *(v for v in batched if v.adapter), *(v for v in batched if not v.adapter)]
    ranked += [v for v in fast if v not in ranked]
    return [variant.id for variant in ranked[:count]]


def fresh_round(registry: Registry, manager: ModelManager, count: int, rng: random.Random) -> list[str]:
    """``count`` fast variants drawn at random (an arena's next round: the voter should not be able to
    guess the line-up), in registry order; fewer when fewer are fast."""
    fast = [v.id for v in registry if is_fast(v, manager, availability(v))]
    drawn = set(rng.sample(fast, min(count, len(fast))))
    return [ident for ident in fast if ident in drawn]


def precision(variant: Variant, device: str) -> str:
    """How a variant's weights are held, as a status line says it: 'bf16', 'fp32', 'int8', 'nf4' or 'remote'."""
    if variant.remote:
        return "remote"
    if variant.quantization != "none":
        return variant.quantization
    dtype = resolve_dtype(variant.dtype, device)
    return SHORT_DTYPES.get(dtype, dtype)


class SpeedLog:
    """Decode speeds measured in this process, per variant (the latest long-enough answer)."""

    def __init__(self) -> None:
        self._speeds: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, answers: Iterable[Answer]) -> None:
        with self._lock:
            for answer in answers:
                stats = answer.stats
                if answer.status == Status.DONE and stats and stats.new_tokens >= MIN_TOKENS_FOR_SPEED:
                    self._speeds[answer.variant_id] = stats.tokens_per_s

    def get(self, variant_id: str) -> float | None:
        with self._lock:
            return self._speeds.get(variant_id)


def choice_label(variant: Variant, device: str, measured: float | None = None) -> str:
    """The variant as a picker shows it: label, id, and a warning when it is slow."""
    label = f"{variant.label} [{variant.id}]"
    slow = slow_reason(variant, device)
    if slow:
        speed = f"measured {measured:.1f} tok/s" if measured else slow
        return f"{label} · slow: {speed}"
    return label


def variant_choices(registry: Registry, manager: ModelManager, speeds: SpeedLog) -> list[tuple[str, str]]:
    """(label, id) pairs of the available variants, in registry order: a picker offers only what can run here
    (the others are listed apart, with ``unavailable_variants``)."""
    available = [variant for variant in registry if availability(variant).ok]
    return [(choice_label(v, manager.device, speeds.get(v.id)), v.id) for v in available]


def unavailable_variants(registry: Registry) -> dict[str, str]:
    """Id -> reason of every variant this machine cannot run, in registry order."""
    statuses = {variant.id: availability(variant) for variant in registry}
    return {ident: status.reason for ident, status in statuses.items() if not status.ok}
