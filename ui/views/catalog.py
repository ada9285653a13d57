"""The registry as a table of facts: what each variant is, what it costs, whether it runs here and why.

The Models tab shows it; it is computed without loading anything (estimates come from parameter
counts, availability from files and the Hub cache) except the actual memory of models already
loaded by this process.
"""

from __future__ import annotations

from dataclasses import dataclass

from medalpaca_core.engine import Studio
from medalpaca_core.models.memory import format_bytes
from medalpaca_core.models.registry import Variant, availability


@dataclass(frozen=True)
class CatalogRow:
    variant_id: str
    label: str
    base: str
    adapter: str
    quantization: str
    params: str
    estimated: str
    actual: str
    available: bool
    why: str
    reference: str  # the paper's USMLE accuracies, for the Hub variants that have them


def format_params(count: int | None) -> str:
    if count is None:
        return "?"
    return f"{count / 1e9:.1f} B" if count >= 1e9 else f"{count / 1e6:.0f} M"


def format_reference(scores: dict[str, float]) -> str:
    """'step1 47.3% · step2 47.7%'; fractions become percentages, percentages stay."""
    return " · ".join(f"{name} {value:.1%}" if value <= 1 else f"{name} {value:.1f}%" for name, value in scores.items())


def actual_memory(studio: Studio, variant: Variant) -> str:
    """The loaded base's footprint, adapters included (all variants on it share it), or '-' when not loaded."""
    loaded = studio.loaded_base(variant)
    if loaded is None:
        return "-"
    return format_bytes(loaded.footprint) + (" (shared base)" if loaded.adapters else "")


def catalog(studio: Studio) -> list[CatalogRow]:
    rows = []
    for variant in studio.variants():
        status = availability(variant)
        needed = studio.estimate(variant)
        rows.append(
            CatalogRow(
                variant_id=variant.id,
                label=variant.label,
                base=variant.base,
                adapter=variant.adapter or "-",
                quantization=variant.quantization,
                params=format_params(needed.params if needed else variant.params),
                estimated=format_bytes(needed.bytes) if needed else "?",
                actual=actual_memory(studio, variant),
                available=status.ok,
                why=status.reason,
                reference=format_reference(variant.reference),
            )
        )
    return rows
