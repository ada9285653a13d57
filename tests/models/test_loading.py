"""Loading weights: safetensors only, and never a model repository's own Python."""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from medalpaca_core.models.loading import load_pretrained, resolve_dtype
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


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, "float32"), (True, False, "bfloat16"), (False, True, "bfloat16")],
)
def test_auto_dtype_is_bf16_only_where_the_cpu_computes_it(monkeypatch, avx512_bf16, amx, expected):
    """Plain AVX-512 passes oneDNN's bf16 check but emulates bf16, 5x slower than fp32: auto means fp32 there."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_dtype("auto", "cpu") == expected
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"  # a dtype asked for is kept
