"""Memory estimates made before a model is loaded, so a load that cannot fit is refused politely.

medAlpaca's users kept crashing notebooks ("Your notebook tried to allocate more memory than is
available"). Every load here is preceded by an estimate -- parameters x bytes per weight plus an
overhead for activations, the KV cache and the runtime -- compared with the memory actually free.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2

# Bytes per weight of the quantized linear layers; embeddings and norms stay in 16 bits.
BYTES_PER_WEIGHT = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0, "nf4": 0.5}
# Share of a LLaMA's parameters in its linear layers (the rest: embeddings, norms); ~0.97 at 7B.
LINEAR_SHARE = 0.9
OVERHEAD_FRACTION = 0.15
OVERHEAD_FIXED = 128 * MIB


class MemoryRefusal(RuntimeError):
    """A load refused because its estimate does not fit the memory that is free."""


@dataclass(frozen=True)
class Estimate:
    """Estimated resident bytes of one model, and how the number came about."""

    params: int
    quantization: str
    dtype: str
    bytes: int

    def explain(self) -> str:
        how = self.dtype if self.quantization == "none" else f"{self.quantization} (LLM.int8/bitsandbytes)"
        return f"{self.params / 1e9:.2f} B parameters in {how}, plus overhead"


def estimate(params: int, quantization: str, dtype: str) -> Estimate:
    """Estimate the memory of ``params`` parameters loaded with ``quantization`` / ``dtype``."""
    full = BYTES_PER_WEIGHT[dtype]
    if quantization == "none":
        weights = params * full
    else:
        weights = params * (LINEAR_SHARE * BYTES_PER_WEIGHT[quantization] + (1 - LINEAR_SHARE) * min(full, 2.0))
    return Estimate(params, quantization, dtype, int(weights * (1 + OVERHEAD_FRACTION) + OVERHEAD_FIXED))


def parse_size(text: str) -> int:
    """'512MB', '2 GiB', '1.5g', '3000000' -> bytes. Raises ValueError with the accepted forms."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not match:
        raise ValueError(f"Cannot read the memory size {text!r}; use e.g. 512MB, 2GB or 3.5GiB")
    number, unit = float(match.group(1)), match.group(2)
    return int(number * 1024 ** "_kmgt".index(unit or "_"))


def format_bytes(count: float) -> str:
    return f"{count / GIB:.1f} GB" if count >= GIB else f"{count / MIB:.0f} MB"


def budget_from_env() -> int | None:
    """``MEDALPACA_MEMORY_BUDGET`` caps the memory all loaded models may take together."""
    raw = os.environ.get("MEDALPACA_MEMORY_BUDGET")
    return parse_size(raw) if raw else None


def free_bytes(device: str) -> int:
    """Memory free for a new model on ``device`` right now."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def smaller_options(params: int, dtype: str, current: str) -> list[Estimate]:
    """The quantizations smaller than ``current``, largest first (what to suggest on refusal)."""
    order = ["none", "int8", "nf4"]
    return [estimate(params, quant, dtype) for quant in order[order.index(current) + 1 :]]


def refusal_message(name: str, needed: Estimate, available: int) -> str:
    """Say how much is needed, how much there is, and which smaller variant would fit."""
    message = (
        f"Not enough memory to load {name}: it needs about {format_bytes(needed.bytes)} "
        f"({needed.explain()}) and {format_bytes(available)} is available."
    )
    names = {"int8": "8-bit (int8)", "nf4": "4-bit (nf4)"}
    options = [
        f"{names[option.quantization]} needs about {format_bytes(option.bytes)}"
        + (" and would fit" if option.bytes <= available else ", which does not fit either")
        for option in smaller_options(needed.params, needed.dtype, needed.quantization)
    ]
    if options:
        message += " Try a quantized variant: " + "; ".join(options) + "."
    return message


def peak_rss_bytes() -> int:
    """Peak resident memory of this process.

    Linux's ``VmHWM`` belongs to the current program image; ``ru_maxrss`` survives ``exec`` and so
    reports the parent's peak in a freshly spawned child, which would hide what the child itself used.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
