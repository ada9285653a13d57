"""The mechanisms behind the app's limits and defaults (issue 7), without a server: rate limit, input text,
settings, exam parsing, what may be loaded, loads that do not hold up other users."""

from __future__ import annotations

import math
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pytest

import medalpaca_core.models.manager
from medalpaca_core.evaluation import ExamError, load_exam
from medalpaca_core.generation.settings import GenerationSettings, SettingsError
from medalpaca_core.models.loading import LoadError, load_pretrained
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Variant, availability
from medalpaca_core.runtime.paths import PROJECT_ROOT
from medalpaca_core.serving.ratelimit import RateLimit, RateLimited, RateLimiter
from ui.views.common import SETTING_NAMES, plain_text, settings_from


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("20/60", RateLimit(20, 60)),
        ("5/10s", RateLimit(5, 10)),
        ("30/min", RateLimit(30, 60)),
        ("100/h", RateLimit(100, 3600)),
        ("3 / 1.5 min", RateLimit(3, 90)),
        ("off", None),
        ("0", None),
    ],
)
def test_rate_limit_spellings(text, limit):
    assert RateLimit.parse(text) == limit


@pytest.mark.parametrize("text", ["lots", "20", "0/60", "5/0", "5/10 weeks"])
def test_unreadable_rate_limits_say_how_to_write_one(text):
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit.parse(text)


def test_rate_limiter_slides_its_window_per_client():
    clock = Clock()
    limiter = RateLimiter(RateLimit(3, 60), clock)
    for _ in range(3):
        limiter.admit("a")
        clock.now += 10
    with pytest.raises(RateLimited, match=r"at most 3 per 60 s from one client\. Try again in 30 s") as refused:
        limiter.admit("a")
    assert refused.value.retry_after_s == pytest.approx(30)
    limiter.admit("b")  # another client has its own allowance
    clock.now += 30  # the first request leaves the window; the refused one never counted
    limiter.admit("a")
    with pytest.raises(RateLimited):
        limiter.admit("a")


def test_rate_limiter_forgets_idle_clients(monkeypatch):
    monkeypatch.setattr("medalpaca_core.serving.ratelimit.MAX_TRACKED_CLIENTS", 10)
    clock = Clock()
    limiter = RateLimiter(RateLimit(1, 60), clock)
    for n in range(10):
        limiter.admit(f"old-{n}")
    clock.now += 61
    limiter.admit("new")
    assert len(limiter._starts) == 1


def test_rate_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MEDALPACA_RATE_LIMIT", "2/5s")
    assert RateLimiter.from_env().limit == RateLimit(2, 5)
    monkeypatch.setenv("MEDALPACA_RATE_LIMIT", "off")
    RateLimiter.from_env().admit("anyone")  # no limit at all
    monkeypatch.delenv("MEDALPACA_RATE_LIMIT")
    assert RateLimiter.from_env().limit == RateLimit(20, 60)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (123, "123"),
        ("tab\tnew\nline\r", "tab\tnew\nline\r"),
        ("nul\x00 bell\x07 esc\x1b[2J del\x7f", "nul bell esc[2J del"),
        ("lone \ud800 and \udfff", "lone \ufffd and \ufffd"),
        ("emoji 🩺 kept", "emoji 🩺 kept"),
    ],
)
def test_plain_text(value, text):
    assert plain_text(value) == text
    plain_text(value).encode("utf-8")  # always encodable: tokenizers, SQLite and JSON take it


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ((0, 1, 0, math.nan, None), "cannot convert float NaN to integer"),
        ((0, 1, math.inf, 16, None), "cannot convert float infinity to integer"),
        ((math.nan, 1, 0, 16, None), "temperature must be between 0 and 5"),
        ((0, 1, 0, None, None), "Invalid generation settings"),
        ((0.5, 1, 0, 16, 1.5), "seed must be a whole number"),
        ((0.5, 1, 0, 16, 2.0**40), r"seed must be 0\.\.4294967295"),
        ((0.5, 1, 0, 16, math.nan), "Invalid generation settings"),
    ],
)
def test_settings_no_page_can_send_are_messages(settings, message):
    with pytest.raises(gr.Error, match=message):
        settings_from(dict(zip(SETTING_NAMES, settings, strict=True)))


def test_settings_arrive_as_one_generation_settings():
    sent = {"temperature": 0.4, "top_p": 0.9, "top_k": 50.0, "max_new_tokens": 16.0, "seed": 7.0}
    assert settings_from(sent) == GenerationSettings(max_new_tokens=16, temperature=0.4, top_p=0.9, top_k=50, seed=7)


def test_settings_keep_seeds_in_range():
    assert GenerationSettings(seed=2**32 - 1).validated().seed == 2**32 - 1
    with pytest.raises(SettingsError, match="seed"):
        GenerationSettings(seed=-1).validated()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "line 1 is not usable exam data: RecursionError"),
        (b'{"question": "q \\udc80", "options": {"A": "a", "B": "b"}, "answer_idx": "A"}', "UnicodeEncodeError"),
        (b'{"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": ' + b"7" * 5000 + b"}", "ValueError"),
    ],
)
def test_jsonl_exams_that_json_accepts_but_nothing_else_can_use_are_refused(tmp_path, line, message):
    exam = tmp_path / "hostile.jsonl"
    exam.write_bytes(line + b"\n")
    with pytest.raises(ExamError, match=message):
        load_exam(exam)


def test_model_weights_load_from_safetensors_only(tiny_dir, tmp_path):
    """A local model folder with only a pickle-based ``pytorch_model.bin`` is refused, not unpickled."""
    import torch
    from safetensors.torch import load_file

    pickled = shutil.copytree(tiny_dir, tmp_path / "pickled-model")
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(OSError, match="safetensors"):
        load_pretrained(str(pickled), "none", "float32", "cpu")


def test_adapters_load_from_safetensors_only(tiny_dir, tiny_adapters, tmp_path):
    pickled = tmp_path / "pickled-lora"
    pickled.mkdir()
    shutil.copy(tiny_adapters[0] / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"a pickle would run code when loaded")
    variant = Variant(id="pickled", label="p", base=str(tiny_dir), adapter=str(pickled), dtype="float32")
    assert not availability(variant).ok and "lacks adapter_model.safetensors" in availability(variant).reason
    with pytest.raises(LoadError, match=r"has no adapter_model\.safetensors"):
        ModelManager(device="cpu").acquire(variant)


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
