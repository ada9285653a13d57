"""The paper's USMLE accuracies, shown beside our own results and always labelled as theirs.

They live in one file, ``assets/paper_usmle.yaml``, with their source; rows name the registry
variant they belong to where there is one, so the app can put a variant's published numbers
next to what it scores here. It sits beside the registry, which fills each variant's
``reference`` from it; evaluation reads it too, and builds on the registry, not the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..runtime.paths import ASSETS_DIR

PAPER_TABLE = ASSETS_DIR / "paper_usmle.yaml"
STEPS = ("step1", "step2", "step3")


@dataclass(frozen=True)
class ReferenceRow:
    model: str
    scores: dict[str, float]
    variant: str | None = None


@dataclass(frozen=True)
class PaperTable:
    source: str
    questions: dict[str, int]
    rows: tuple[ReferenceRow, ...] = field(default_factory=tuple)

    def for_variant(self, variant_id: str) -> ReferenceRow | None:
        return next((row for row in self.rows if row.variant == variant_id), None)


def load_paper_table(path: Path = PAPER_TABLE) -> PaperTable:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows = tuple(
        ReferenceRow(entry["model"], {step: float(entry[step]) for step in STEPS}, entry.get("variant"))
        for entry in document["rows"]
    )
    return PaperTable(document["source"], dict(document["questions"]), rows)
