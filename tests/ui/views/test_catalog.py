"""The registry as the Models table: loaded memory, shared bases, availability and the paper's scores."""

from __future__ import annotations

from medalpaca_core.engine import Studio
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Variant
from ui.views.catalog import catalog, format_reference


def test_models_table(tiny_registry):
    tiny_registry.add(Variant(id="hub", label="Hub", base="medalpaca/medalpaca-7b", reference={"step1": 0.473}))
    studio = Studio(tiny_registry, ModelManager(device="cpu"))
    studio.manager.acquire(tiny_registry.get("tiny-lora-0"))
    rows = {row.variant_id: row for row in catalog(studio)}
    assert rows["tiny"].actual.endswith("(shared base)") and rows["tiny-int8"].actual == "-"
    assert not rows["hub"].available and rows["hub"].reference == "step1 47.3%"
    assert format_reference({"step2": 47.7}) == "step2 47.7%"
