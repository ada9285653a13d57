"""The variant registry: bundled entries, discovery of new adapters, availability without a network."""

import json
import shutil

import pytest

from medalpaca_core.models.default_model import DEFAULT_ALIAS
from medalpaca_core.models.registry import (
    Registry,
    RegistryError,
    UnknownVariantError,
    Variant,
    availability,
    discover,
    read_registry_file,
)

PAPER_IDS = [
    "medalpaca-7b",
    "medalpaca-13b",
    "medalpaca-lora-7b-16bit",
    "medalpaca-lora-7b-8bit",
    "medalpaca-lora-13b-8bit",
    "medalpaca-lora-30b-8bit",
    "alpaca-7b-native",
    "alpaca-lora-7b",
]


@pytest.fixture
def registry(tmp_path):
    return Registry.load(finetuned=tmp_path / "none")


def test_bundled_registry_lists_embedded_and_paper_variants(registry):
    ids = registry.ids()
    for ident in ["smol-base", "smol-int8", "smol-nf4", *PAPER_IDS]:
        assert ident in ids
    assert registry.get("smol-int8").quantization == "int8"
    assert registry.get("smol-nf4").quantization == "nf4"
    lora = registry.get("medalpaca-lora-7b-8bit")
    assert lora.base == "huggyllama/llama-7b"  # overrides the deleted decapoda base of its config
    assert lora.adapter == "medalpaca/medalpaca-lora-7b-8bit"


def test_embedded_variants_are_available_offline(registry):
    for ident in ["smol-base", "smol-int8", "smol-nf4"]:
        assert availability(registry.get(ident)).ok


def test_hub_variants_are_unavailable_offline_with_a_reason(registry):
    for ident in PAPER_IDS:
        status = availability(registry.get(ident))
        assert not status.ok
        assert "HF_HUB_OFFLINE" in status.reason or "unreachable" in status.reason


def test_unknown_variant_names_valid_ids(registry):
    with pytest.raises(UnknownVariantError) as caught:
        registry.get("gpt-5-medical")
    assert "gpt-5-medical" in str(caught.value) and "smol-base" in str(caught.value)


def test_adapters_are_discovered_with_portable_base(tmp_path):
    folder = tmp_path / "my-lora"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    )
    (folder / "adapter_model.safetensors").write_bytes(b"")
    (tmp_path / "full-model").mkdir()
    (tmp_path / "full-model" / "config.json").write_text("{}")
    (tmp_path / "junk").mkdir()
    shutil.copytree(folder, tmp_path / ".my-lora.previous")  # hidden: finetune's set-aside copy (or .cache)
    found = {variant.id: variant for variant in discover(tmp_path, "finetuned", prefix="local/")}
    assert set(found) == {"local/my-lora", "local/full-model"}
    assert found["local/my-lora"].base == DEFAULT_ALIAS
    assert found["local/my-lora"].adapter == str(folder)
    assert found["local/full-model"].base == str(tmp_path / "full-model")


def test_variant_json_overrides_discovered_metadata(tmp_path):
    folder = tmp_path / "lora8"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (folder / "variant.json").write_text(
        json.dumps({"label": "My 8-bit LoRA", "quantization": "int8", "template": "context_qa"})
    )
    variant = discover(tmp_path, "bundled")[0]
    assert (variant.label, variant.quantization, variant.template) == ("My 8-bit LoRA", "int8", "context_qa")


def test_finetuned_folder_appears_in_loaded_registry(tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    assert "local/fresh" in Registry.load(finetuned=tmp_path)


def test_adapter_without_weights_is_unavailable(tmp_path):
    folder = tmp_path / "empty-lora"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    status = availability(Variant(id="x", label="x", base=DEFAULT_ALIAS, adapter=str(folder)))
    assert not status.ok and "adapter_model.safetensors" in status.reason


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("variants: 3", "'variants' list"),
        ("variants:\n  - {id: a, label: A}", "missing keys"),
        ("variants:\n  - {id: a, label: A, base: b, colour: red}", "unknown keys"),
        ("variants:\n  - {id: a, label: A, base: b, quantization: int3}", "quantization"),
        ("variants:\n  - {id: a, label: A, base: b, template: vicuna}", "Unknown prompt template"),
        ("variants: [", "Cannot read"),
    ],
)
def test_bad_registry_files_are_clear_errors(tmp_path, document, message):
    path = tmp_path / "variants.yaml"
    path.write_text(document)
    with pytest.raises(RegistryError, match=message):
        read_registry_file(path)
