"""Adapters: only their safetensors weights are ever read; a folder without them is unavailable, and says why."""

from __future__ import annotations

import shutil

import pytest

from medalpaca_core.models.loading import LoadError
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Variant, availability


def test_adapters_load_from_safetensors_only(tiny_dir, tiny_adapters, tmp_path):
    pickled = tmp_path / "pickled-lora"
    pickled.mkdir()
    shutil.copy(tiny_adapters[0] / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"a pickle would run code when loaded")
    variant = Variant(id="pickled", label="p", base=str(tiny_dir), adapter=str(pickled), dtype="float32")
    assert not availability(variant).ok and "lacks adapter_model.safetensors" in availability(variant).reason
    with pytest.raises(LoadError, match=r"has no adapter_model\.safetensors"):
        ModelManager(device="cpu").acquire(variant)
