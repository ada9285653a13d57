"""The memory-bounded model cache: one base in memory per (source, precision), shared by its adapters.

The manager estimates every load before it happens and refuses one that cannot fit, naming the
smaller quantization that would; it keeps models cached and releases the least recently used
ones when memory is short.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..generation.multilora import FusedLoRA, Unsupported
from .adapters import BASE_ADAPTER, check_adapter_fits, local_adapter_dir
from .default_model import DEFAULT_ALIAS, DEFAULT_PARAMS
from .loading import LoadError, count_params, load_pretrained, pick_device, resolve_base, resolve_dtype
from .loading_lock import LOADING
from .memory import Estimate, MemoryRefusal, budget_from_env, estimate, format_bytes, free_bytes, refusal_message
from .registry import Variant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseKey:
    """What makes two variants share one model in memory."""

    source: str
    quantization: str
    dtype: str
    device: str


@dataclass
class LoadedModel:
    """A base model in memory, with the LoRA adapters loaded into it so far."""

    key: BaseKey
    model: Any
    tokenizer: Any
    estimate: Estimate
    footprint: int
    load_seconds: float
    adapters: dict[str, str] = field(default_factory=dict)  # adapter source -> PEFT adapter name
    lock: threading.RLock = field(default_factory=threading.RLock)
    fused: FusedLoRA | None = None  # stacked adapters for mixed batches, rebuilt when adapters change
    serving: bool = False  # its scheduler has rows running or waiting: releasing it would free nothing

    @property
    def reserved_bytes(self) -> int:
        """What this model counts against the budget: its weights, or its estimate with overhead."""
        return max(self.footprint, self.estimate.bytes)

    @property
    def is_peft(self) -> bool:
        return bool(self.adapters)

    @property
    def context_window(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def add_adapter(self, adapter: str) -> str:
        """Load ``adapter`` into this base (once) and return its PEFT name."""
        if adapter in self.adapters:
            return self.adapters[adapter]
        folder = local_adapter_dir(adapter)
        base = self.model.get_base_model() if self.is_peft else self.model
        check_adapter_fits(folder, base, from_hub=not Path(adapter).expanduser().exists())
        name = f"adapter_{len(self.adapters)}"
        with LOADING:
            if self.is_peft:
                self.model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
            else:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name, is_trainable=False)
                self.model.eval()
        self.adapters[adapter] = name
        self.footprint = self.model.get_memory_footprint()
        return name

    @contextmanager
    def rows_adapters(self, names: list[str]) -> Iterator[dict[str, Any]]:
        """The forward/generate arguments that apply each row's adapter (``BASE_ADAPTER``: none).

        A batch with a single adapter takes PEFT's plain path (that adapter active, or all of them
        disabled): ``adapter_names`` splits every LoRA layer into per-adapter sub-batches, which costs
        a single stream ~25% of its speed. A mixed batch takes the fused path (``multilora``), or PEFT's
        ``adapter_names`` where the adapters cannot be fused. Hold ``lock`` around it: the active
        adapter and the hooks are shared state.
        """
        if not self.is_peft:
            yield {}
        elif set(names) == {BASE_ADAPTER}:
            with self.model.disable_adapter():
                yield {}
        elif len(set(names)) == 1:
            self.model.set_adapter(names[0], inference_mode=True)
            yield {}
        elif (fused := self.fused_adapters()) is not None:
            with fused.rows(names):
                yield {}
        else:
            yield {"adapter_names": list(names)}

    def fused_adapters(self) -> FusedLoRA | None:
        """The stacks of this base's adapters, built on first use and again after adapters change."""
        if self.fused is None or not self.fused.is_current(self.model):
            try:
                self.fused = FusedLoRA(self.model)
            except Unsupported as reason:
                log.info("Mixed batches of %s use PEFT's adapter_names path: %s", self.key.source, reason)
                self.fused = None
                return None
            self.footprint = self.model.get_memory_footprint() + self.fused.nbytes
        return self.fused


@dataclass
class _Loading:
    """A base being loaded: the memory granted to it, and what became of it, for those who wait on it."""

    estimate: Estimate | None
    done: threading.Event = field(default_factory=threading.Event)
    model: LoadedModel | None = None
    error: BaseException | None = None

    @property
    def reserved_bytes(self) -> int:
        return self.estimate.bytes if self.estimate else 0


class ModelManager:
    """Loads, shares, caches and releases models within the memory there is.

    Loads run outside the manager's lock, so that a base taking minutes to load (a 7B model, the default
    model's first conversion) holds up neither the variants already loaded nor anyone listing models;
    whoever needs a base that is being loaded waits for that load instead of starting another.
    """

    def __init__(self, budget_bytes: int | None = None, device: str | None = None):
        self.device = device or pick_device()
        self.budget = budget_bytes if budget_bytes is not None else budget_from_env()
        self._models: OrderedDict[BaseKey, LoadedModel] = OrderedDict()
        self._loading: dict[BaseKey, _Loading] = {}
        self._lock = threading.RLock()

    def key_for(self, variant: Variant) -> BaseKey:
        return BaseKey(variant.base, variant.quantization, resolve_dtype(variant.dtype, self.device), self.device)

    def estimate_for(self, variant: Variant) -> Estimate | None:
        """The memory ``variant``'s base will take, or None when its size is not known offline."""
        if variant.remote:  # another server's memory
            return None
        key = self.key_for(variant)
        params = variant.params
        if params is None:
            params = DEFAULT_PARAMS if variant.base == DEFAULT_ALIAS else count_params(resolve_base(variant.base))
        return estimate(params, key.quantization, key.dtype) if params else None

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def held_bytes(self) -> int:
        """What loaded models take, plus what loads in progress were granted."""
        with self._lock:
            return sum(item.reserved_bytes for item in [*self._models.values(), *self._loading.values()])

    def available_bytes(self) -> int:
        """Free memory now (less what loads in progress have yet to take), capped by the budget net of what is held."""
        with self._lock:
            free = free_bytes(self.device) - sum(loading.reserved_bytes for loading in self._loading.values())
            if self.budget is not None:
                free = min(free, self.budget - self.held_bytes())
        return max(free, 0)

    def acquire(self, variant: Variant) -> tuple[LoadedModel, str]:
        """The loaded base of ``variant`` and the adapter name to generate with."""
        key = self.key_for(variant)
        loaded = self._base(variant, key)
        if not variant.adapter:
            return loaded, BASE_ADAPTER
        with loaded.lock:
            try:
                return loaded, loaded.add_adapter(variant.adapter)
            except LoadError as error:
                raise LoadError(f"{variant.id}: {error}") from error
            except Exception as error:
                self.release(key)  # a failed injection may have left the base modified
                raise LoadError(f"{variant.id}: could not load adapter {variant.adapter}: {error}") from error

    def _make_room(self, variant: Variant, needed: Estimate) -> None:
        """Release least recently used, idle models until ``needed`` fits, or refuse."""
        evictable = [m for m in self._models.values() if m.key != self.key_for(variant) and not m.serving]
        possible = self.available_bytes() + sum(m.reserved_bytes for m in evictable)
        if needed.bytes > possible:
            raise MemoryRefusal(refusal_message(variant.id, needed, possible))
        for candidate in evictable:
            if needed.bytes <= self.available_bytes():
                break
            if candidate.lock.acquire(blocking=False):
                try:
                    log.info("Releasing %s to make room for %s", candidate.key.source, variant.id)
                    self._drop(candidate.key)
                finally:
                    candidate.lock.release()
        if needed.bytes > self.available_bytes():
            raise MemoryRefusal(refusal_message(variant.id, needed, self.available_bytes()))

    def _base(self, variant: Variant, key: BaseKey) -> LoadedModel:
        """The base for ``key``: cached, awaited from a load in progress, or loaded now (outside the lock)."""
        with self._lock:
            loaded = self._models.get(key)
            if loaded is not None:
                self._models.move_to_end(key)
                return loaded
            loading = self._loading.get(key)
            owner = loading is None
            if owner:
                needed = self.estimate_for(variant)
                if needed is not None:
                    self._make_room(variant, needed)
                loading = self._loading[key] = _Loading(needed)
        if not owner:
            loading.done.wait()
            if loading.model is None:
                raise LoadError(str(loading.error))
            return loading.model
        try:
            loading.model = self._load(variant, key, loading.estimate)
        except BaseException as error:
            loading.error = error
            raise
        finally:
            with self._lock:
                del self._loading[key]
                if loading.model is not None:
                    self._models[key] = loading.model
            loading.done.set()
        return loading.model

    def _load(self, variant: Variant, key: BaseKey, needed: Estimate | None) -> LoadedModel:
        started = time.perf_counter()
        try:
            model, tokenizer = load_pretrained(resolve_base(variant.base), key.quantization, key.dtype, key.device)
        except MemoryRefusal:
            raise
        except Exception as error:
            raise LoadError(f"{variant.id}: could not load base model {variant.base}: {error}") from error
        model.eval()
        footprint = model.get_memory_footprint()
        loaded = LoadedModel(
            key=key,
            model=model,
            tokenizer=tokenizer,
            estimate=needed or estimate(sum(p.numel() for p in model.parameters()), key.quantization, key.dtype),
            footprint=footprint,
            load_seconds=time.perf_counter() - started,
        )
        log.info(
            "Loaded %s (%s) in %.1f s, %s", variant.base, key.quantization, loaded.load_seconds, format_bytes(footprint)
        )
        return loaded

    def _drop(self, key: BaseKey) -> None:
        self._models.pop(key, None)
        gc.collect()

    def release(self, key: BaseKey) -> None:
        """Forget a loaded model; its memory is freed once no generation still uses it."""
        with self._lock:
            self._drop(key)
