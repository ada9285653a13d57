"""Fused multi-LoRA forward: a batch whose rows use different adapters of one base, in one pass per layer.

PEFT's ``adapter_names`` path loops over the adapters in the batch in every LoRA layer: a gather, two
small matmuls and an ``index_put`` per adapter, 60 layers deep, every decode step. On a CPU that loop,
not the arithmetic, is what made 4 variants cost 1.9x one (BENCHMARKS.md). Serving systems for many
adapters on one base (Punica, S-LoRA, vLLM/LoRAX multi-LoRA) stack the adapters' matrices instead and
apply each row's adapter in one batched operation; this module does the same on top of PEFT:

- PEFT still loads and owns every adapter; ``FusedLoRA`` only copies each LoRA layer's A and B
  matrices into per-layer stacks (a few MB at most), rebuilt whenever the base's adapters change;
- a mixed batch runs with PEFT's adapters disabled (the LoRA layers compute the base output) and a
  forward hook on each LoRA layer adds ``scaling * (x @ A[row]) @ B[row]`` for every row at once;
- adapters of different ranks stack side by side; a row whose adapter lacks a layer (other target
  modules) and a bare-base row get no delta.

Two ways to apply the stacks, measured in BENCHMARKS.md: ``concat`` multiplies x by every adapter's A
concatenated (one matmul; each row then keeps only its own adapter's columns) and ``gather`` picks
each row's rank-padded A and B and runs two batched matmuls. With a handful of adapters ``concat``
wastes a few hundred multiply-adds per token and saves the gathers, so it is the default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

BASE_ROW = "__base__"  # a row that gets no adapter (PEFT's spelling in ``adapter_names``)
STRATEGIES = ("concat", "gather")
# LoRA layer classes whose adapter output is ``scaling * lora_B(lora_A(x))`` added to the base layer's
# output (plain, LLM.int8 and 4-bit bases); other LoRA layer kinds (embeddings, convolutions) fall back.
LINEAR_KINDS = ("Linear", "Linear8bitLt", "Linear4bit")


class Unsupported(ValueError):
    """Adapters this module cannot fuse (DoRA, LoRA on embeddings, merged weights): use PEFT's own path."""


@dataclass
class LayerStack:
    """One LoRA layer's adapters, stacked.

    ``a``/``b``: ``concat`` — (in, C) and (C, out), C the sum of the ranks; ``gather`` — (N + 1, in, R)
    and (N + 1, R, out), R the largest rank, slot 0 all zeros for rows without this adapter.
    """

    a: Any
    b: Any
    columns: dict[str, tuple[int, int]]  # adapter -> its columns in ``a`` (concat) / its slot (gather: (slot, r))
    scaling: dict[str, float]


def lora_layers(model: Any) -> Iterator[tuple[str, Any]]:
    """Every PEFT LoRA layer of ``model`` with its module name."""
    from peft.tuners.lora import LoraLayer

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            yield name, module


def check_supported(model: Any) -> None:
    """Raise ``Unsupported`` when some adapter of ``model`` is not a plain LoRA on linear layers."""
    for name, layer in lora_layers(model):
        adapters = set(layer.lora_A) | set(getattr(layer, "lora_embedding_A", {}))
        if not adapters:
            continue
        if type(layer).__name__ not in LINEAR_KINDS:
            raise Unsupported(f"{name}: LoRA on a {type(layer).__name__} layer")
        if getattr(layer, "merged_adapters", None):
            raise Unsupported(f"{name}: adapters are merged into the weights")
        for adapter in adapters:
            if adapter in getattr(layer, "lora_variant", {}) or getattr(layer, "use_dora", {}).get(adapter):
                raise Unsupported(f"{name}: adapter {adapter} is a LoRA variant (DoRA or similar)")
            if getattr(layer.lora_B[adapter], "bias", None) is not None:
                raise Unsupported(f"{name}: adapter {adapter} has a LoRA bias")


def _stack(layer: Any, adapters: list[str], strategy: str) -> LayerStack:
    import torch

    present = [adapter for adapter in adapters if adapter in layer.lora_A]
    a_list = [layer.lora_A[adapter].weight.detach() for adapter in present]  # (r, in) each
    b_list = [layer.lora_B[adapter].weight.detach() for adapter in present]  # (out, r) each
    dtype = a_list[0].dtype
    for tensor in a_list + b_list:
        dtype = torch.promote_types(dtype, tensor.dtype)
    scaling = {adapter: float(layer.scaling[adapter]) for adapter in present}
    if strategy == "concat":
        columns, start = {}, 0
        for adapter, a in zip(present, a_list, strict=True):
            columns[adapter] = (start, start + a.shape[0])
            start += a.shape[0]
        a_cat = torch.cat(a_list, dim=0).to(dtype).t().contiguous()
        b_cat = torch.cat(b_list, dim=1).to(dtype).t().contiguous()
        return LayerStack(a_cat, b_cat, columns, scaling)
    rank = max(a.shape[0] for a in a_list)
    a_stack = a_list[0].new_zeros((len(present) + 1, a_list[0].shape[1], rank), dtype=dtype)
    b_stack = b_list[0].new_zeros((len(present) + 1, rank, b_list[0].shape[0]), dtype=dtype)
    slots = {}
    for slot, (adapter, a, b) in enumerate(zip(present, a_list, b_list, strict=True), start=1):
        a_stack[slot, :, : a.shape[0]] = a.t()
        b_stack[slot, : b.shape[1], :] = b.t()
        slots[adapter] = (slot, a.shape[0])
    return LayerStack(a_stack, b_stack, slots, scaling)


class FusedLoRA:
    """Stacked LoRA weights of one PEFT model, and the hooks that apply them to a mixed batch."""

    def __init__(self, model: Any, strategy: str = "concat"):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        check_supported(model)
        self.model, self.strategy = model, strategy
        self.adapters = sorted(model.peft_config)
        self.stacks: dict[Any, LayerStack] = {}  # LoRA layer -> its stacks
        for _, layer in lora_layers(model):
            if any(adapter in layer.lora_A for adapter in self.adapters):
                self.stacks[layer] = _stack(layer, self.adapters, strategy)

    @property
    def nbytes(self) -> int:
        """Memory the stacks take (copies of the adapters' weights)."""
        return sum(s.a.numel() * s.a.element_size() + s.b.numel() * s.b.element_size() for s in self.stacks.values())

    def is_current(self, model: Any) -> bool:
        """Whether these stacks still describe ``model``'s adapters (an adapter joined or left: rebuild)."""
        return model is self.model and sorted(model.peft_config) == self.adapters

    def _row_terms(self, stack: LayerStack, names: list[str]) -> tuple[Any, Any] | None:
        """Per-row selectors for one layer, or None when no row uses an adapter of this layer."""
        import torch

        if not any(name in stack.columns for name in names):
            return None
        device = stack.a.device
        scale = torch.tensor([stack.scaling.get(name, 0.0) for name in names], dtype=stack.a.dtype, device=device)
        if self.strategy == "gather":
            slots = torch.tensor([stack.columns.get(name, (0, 0))[0] for name in names], device=device)
            return slots, scale.view(-1, 1, 1)
        mask = torch.zeros((len(names), 1, stack.a.shape[1]), dtype=stack.a.dtype, device=device)
        for row, name in enumerate(names):
            if name in stack.columns:
                start, stop = stack.columns[name]
                mask[row, 0, start:stop] = 1
        return mask, scale.view(-1, 1, 1)

    def _hook(self, stack: LayerStack, terms: tuple[Any, Any]) -> Any:
        import torch

        selector, scale = terms
        if self.strategy == "concat":

            def delta(x: Any) -> Any:
                return ((x @ stack.a) * selector) @ stack.b * scale

        else:
            a_rows, b_rows = stack.a[selector], stack.b[selector]

            def delta(x: Any) -> Any:
                return torch.bmm(torch.bmm(x, a_rows), b_rows) * scale

        def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
            x = args[0].to(stack.a.dtype)
            return (output.to(stack.a.dtype) + delta(x)).to(output.dtype)

        return hook

    @contextmanager
    def rows(self, names: list[str]) -> Iterator[None]:
        """Run the model inside this block with row ``i`` using adapter ``names[i]`` (``BASE_ROW``: none).

        PEFT's adapters are disabled meanwhile (its LoRA layers give the base output) and each LoRA layer
        adds its rows' deltas through a forward hook; the batch size must stay ``len(names)``.
        """
        unknown = set(names) - set(self.adapters) - {BASE_ROW}
        if unknown:
            raise ValueError(f"unknown adapters {sorted(unknown)}; loaded: {self.adapters}")
        with ExitStack() as stack:
            stack.enter_context(self.model.disable_adapter())
            for layer, layer_stack in self.stacks.items():
                terms = self._row_terms(layer_stack, names)
                if terms is not None:
                    stack.callback(layer.register_forward_hook(self._hook(layer_stack, terms)).remove)
            yield
