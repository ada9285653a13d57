"""LoRA adapters before they touch a base: where their files are, and whether their shapes fit it.

A LoRA made for another base is refused with a message before PEFT injects anything, so a shared
base is never left half-modified.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..runtime import hub
from .loading import LoadError

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a batched generate


def local_adapter_dir(adapter: str) -> Path:
    """A local folder holding the adapter; Hub adapters are fetched (config and weights only)."""
    path = Path(adapter).expanduser()
    if path.exists():
        return path
    from huggingface_hub import snapshot_download

    patterns = ["adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"]
    return Path(snapshot_download(adapter, allow_patterns=patterns, local_files_only=hub.offline_mode()))


def _adapter_tensor_shapes(folder: Path, from_hub: bool) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        if from_hub and (folder / "adapter_model.bin").is_file():
            return {}  # a 2023 Hub adapter: PEFT reads it with torch's weights_only loader
        raise LoadError(f"{folder} has no adapter_model.safetensors")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise LoadError(f"{weights} is corrupt or truncated: {error}") from error


def check_adapter_fits(folder: Path, model: Any, from_hub: bool = False) -> None:
    """Compare the adapter's LoRA shapes with the base's layers before touching the model.

    A LoRA made for another base (other widths, other layer names) is refused with a message,
    instead of failing half-way through injection and leaving the shared base modified.
    """
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LoadError(f"{folder}/adapter_config.json is missing or not JSON: {error}") from error
    if config.get("peft_type") != "LORA":
        raise LoadError(f"{folder} is a {config.get('peft_type')!r} adapter; only LoRA adapters are supported")
    modules = dict(model.named_modules())
    for name, shape in _adapter_tensor_shapes(folder, from_hub).items():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        module_name = name.removeprefix("base_model.model.").split(".lora_")[0]
        module = modules.get(module_name)
        if module is None or not hasattr(module, "in_features"):
            raise LoadError(f"Adapter {folder.name} does not fit this base: it has no layer {module_name}")
        expected = module.in_features if ".lora_A." in name else module.out_features
        actual = shape[1] if ".lora_A." in name else shape[0]
        if expected != actual:
            raise LoadError(
                f"Adapter {folder.name} does not fit this base: {module_name} has width {expected}, "
                f"the adapter was trained for {actual}"
            )
