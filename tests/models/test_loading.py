"""Loading weights: safetensors only, and never a model repository's own Python."""

from __future__ import annotations

import re
import shutil

import pytest

from medalpaca_core.models.loading import load_pretrained
from medalpaca_core.runtime.paths import PROJECT_ROOT


def test_model_weights_load_from_safetensors_only(tiny_dir, tmp_path):
    """A local model folder with only a pickle-based ``pytorch_model.bin`` is refused, not unpickled."""
    import torch
    from safetensors.torch import load_file

    pickled = shutil.copytree(tiny_dir, tmp_path / "pickled-model")
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(OSError, match="safetensors"):
        load_pretrained(str(pickled), "none", "float32", "cpu")


def test_no_code_ever_asks_for_remote_code():
    """``trust_remote_code`` appears only as False: no model repository's Python ever runs here."""
    sources = [PROJECT_ROOT / "app.py"]
    for package in ("medalpaca_core", "ui", "finetune", "benchmarks"):
        sources += (PROJECT_ROOT / package).rglob("*.py")
    uses = [
        (path.name, match.group(1))
        for path in sources
        for match in re.finditer(r"trust_remote_code[\"']?\s*[=:]\s*(\w+)", path.read_text(encoding="utf-8"))
    ]
    assert uses, "the loader passes trust_remote_code=False explicitly"
    assert all(value == "False" for _, value in uses), uses
