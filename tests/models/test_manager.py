"""Loading: one shared base for all adapters, int8/nf4, memory refusal and LRU release, bad adapters."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import medalpaca_core.models.manager
from medalpaca_core.models.adapters import BASE_ADAPTER
from medalpaca_core.models.loading import LoadError, load_pretrained
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.memory import MemoryRefusal, estimate, parse_size, refusal_message
from medalpaca_core.models.registry import Variant
from tests.tiny import build_tiny_llama, build_tiny_lora


def test_adapters_share_one_base(tiny_registry):
    manager = ModelManager(device="cpu")
    base, name = manager.acquire(tiny_registry.get("tiny"))
    assert name == BASE_ADAPTER
    first, name0 = manager.acquire(tiny_registry.get("tiny-lora-0"))
    second, name1 = manager.acquire(tiny_registry.get("tiny-lora-1"))
    assert first is second is base and name0 != name1
    assert len(manager.loaded()) == 1
    assert set(base.model.peft_config) == {name0, name1}
    again, name0_again = manager.acquire(tiny_registry.get("tiny-lora-0"))
    assert again is base and name0_again == name0  # loaded once, reused


def test_int8_and_nf4_loads_use_bitsandbytes_layers(tiny_registry):
    import bitsandbytes as bnb

    manager = ModelManager(device="cpu")
    int8, _ = manager.acquire(tiny_registry.get("tiny-int8"))
    nf4, _ = manager.acquire(tiny_registry.get("tiny-nf4"))
    q_int8 = int8.model.model.layers[0].self_attn.q_proj
    q_nf4 = nf4.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_int8, bnb.nn.Linear8bitLt) and q_int8.state.threshold == 6.0
    assert isinstance(q_nf4, bnb.nn.Linear4bit) and q_nf4.weight.quant_type == "nf4"
    assert len(manager.loaded()) == 2
    assert nf4.footprint < int8.footprint


def test_refusal_when_the_estimate_does_not_fit(tiny_registry):
    manager = ModelManager(device="cpu", budget_bytes=parse_size("1MB"))
    with pytest.raises(MemoryRefusal) as caught:
        manager.acquire(tiny_registry.get("tiny"))
    message = str(caught.value)
    assert "Not enough memory to load tiny" in message and "8-bit" in message and "4-bit" in message
    assert manager.loaded() == []


def test_refusal_message_names_the_variant_that_fits():
    needed = estimate(13_000_000_000, "none", "bfloat16")
    message = refusal_message("medalpaca-13b", needed, available=int(20e9))
    assert "needs about 27" in message or "needs about 28" in message
    assert "8-bit (int8) needs about" in message and "would fit" in message


def test_least_recently_used_model_is_released_when_memory_is_short(tiny_registry):
    fp32 = tiny_registry.get("tiny")
    needed = ModelManager(device="cpu").estimate_for(fp32).bytes
    manager = ModelManager(device="cpu", budget_bytes=int(needed * 1.5))
    first, _ = manager.acquire(fp32)
    manager.acquire(tiny_registry.get("tiny-nf4"))
    assert [m.key.quantization for m in manager.loaded()] == ["nf4"]
    assert first not in manager.loaded()


def test_missing_adapter_folder_is_a_load_error(tiny_dir, tmp_path):
    variant = Variant(id="ghost", label="g", base=str(tiny_dir), adapter=str(tmp_path / "nowhere"), dtype="float32")
    with pytest.raises(Exception, match="nowhere"):
        ModelManager(device="cpu").acquire(variant)


def test_corrupt_adapter_is_refused_and_base_keeps_working(tiny_registry, tiny_adapters, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_adapters[0], broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])  # truncated file
    manager = ModelManager(device="cpu")
    variant = Variant(
        id="broken", label="b", base=str(tiny_registry.get("tiny").base), adapter=str(broken), dtype="float32"
    )
    with pytest.raises(LoadError, match="corrupt or truncated"):
        manager.acquire(variant)
    loaded, name = manager.acquire(tiny_registry.get("tiny-lora-1"))
    assert name in loaded.model.peft_config


def test_adapter_for_another_base_is_refused(tiny_dir, tmp_path, default_model_dir):
    other_base = build_tiny_llama(tmp_path / "wide", default_model_dir, hidden_size=96, intermediate_size=192)
    foreign = build_tiny_lora(other_base, tmp_path / "foreign-lora", seed=3)
    variant = Variant(id="foreign", label="f", base=str(tiny_dir), adapter=str(foreign), dtype="float32")
    with pytest.raises(LoadError, match="does not fit this base"):
        ModelManager(device="cpu").acquire(variant)


def test_parse_size_accepts_common_spellings():
    assert parse_size("512MB") == 512 * 1024**2
    assert parse_size("2 GiB") == 2 * 1024**3
    assert parse_size("1.5g") == int(1.5 * 1024**3)
    with pytest.raises(ValueError, match="512MB"):
        parse_size("lots")


def test_parallel_loads_keep_tied_embeddings(tiny_dir):
    """from_pretrained patches PreTrainedModel.tie_weights while it runs; parallel loads must take turns."""
    from concurrent.futures import ThreadPoolExecutor

    from medalpaca_core.models.loading import load_pretrained

    with ThreadPoolExecutor(4) as pool:
        models = [m for m, _ in pool.map(lambda _: load_pretrained(str(tiny_dir), "none", "float32", "cpu"), range(8))]
    for model in models:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


FIRST_LOADS_IN_THREADS = """
import sys, threading
from medalpaca_core.models.loading import load_pretrained
errors = []
def load(quantization):
    try:
        load_pretrained(sys.argv[1], quantization, "float32", "cpu")
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=load, args=(q,)) for q in ("int8", "nf4")]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("errors:", errors)
"""


def test_first_loads_in_parallel_threads_of_a_fresh_process(tiny_dir):
    """transformers' lazy imports raced on first use: one of two parallel loads got an ImportError."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", FIRST_LOADS_IN_THREADS, str(tiny_dir)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "errors: []" in done.stdout, done.stdout + done.stderr[-2000:]


def test_a_slow_load_holds_up_neither_loaded_models_nor_listings(tiny_registry, monkeypatch):
    """While one base loads (held here until the test lets it go), a loaded base serves at once, listings
    answer, the memory it was granted counts, and a second request for the same base waits for that load."""
    manager = ModelManager(device="cpu")
    manager.acquire(tiny_registry.get("tiny"))
    slow = Variant(id="tiny-bf16", label="bf16", base=tiny_registry.get("tiny").base, dtype="bfloat16")
    entered, gate, loads = threading.Event(), threading.Event(), []

    def gated_load(source, quantization, dtype, device):
        if dtype == "bfloat16":
            loads.append(source)
            entered.set()
            assert gate.wait(60)
        return load_pretrained(source, quantization, dtype, device)

    monkeypatch.setattr(medalpaca_core.models.manager, "load_pretrained", gated_load)
    held_before = manager.held_bytes()
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.submit(manager.acquire, slow), pool.submit(manager.acquire, slow)
        assert entered.wait(60)
        started = time.perf_counter()
        _, adapter = manager.acquire(tiny_registry.get("tiny-lora-0"))  # the loaded base, a new adapter on it
        assert [model.key.dtype for model in manager.loaded()] == ["float32"]
        assert manager.held_bytes() == held_before + manager.estimate_for(slow).bytes
        assert time.perf_counter() - started < 10 and adapter.startswith("adapter_")
        gate.set()
        assert first.result()[0] is second.result()[0]
    assert len(loads) == 1
    assert sorted(model.key.dtype for model in manager.loaded()) == ["bfloat16", "float32"]
