"""Shared fixtures: a tiny random LLaMA (fast, built here) and tiny random LoRA adapters for it.

The tiny model borrows the real default model's tokenizer (prepared by ``make test``), so prompts
tokenize exactly as they do in the app; its weights are random and a few hundred KB.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from tests.speed.sitecustomize import speed_from_env, stretch_waits

if SPEED := speed_from_env():  # MEDALPACA_TEST_SPEED: the suite as on a faster or slower machine
    stretch_waits(SPEED)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parent / "speed"), os.environ.get("PYTHONPATH")])
    )

pytest.register_assert_rewrite("tests.app_server")  # test modules import its helpers before loading it as a plugin

from medalpaca_core.models.default_model import resolve_default_model  # noqa: E402
from medalpaca_core.models.registry import Registry, Variant  # noqa: E402
from tests.held import HeldAnswers  # noqa: E402
from tests.tiny import build_tiny_llama, build_tiny_lora  # noqa: E402


def pytest_report_header() -> str | None:
    return f"waits stretched {SPEED}x: the suite as on a machine {SPEED}x as fast (tests/speed)" if SPEED else None


@pytest.fixture(scope="session")
def default_model_dir() -> str:
    """The real SmolLM2-135M-Instruct folder (converted from the GGUF once per machine)."""
    return resolve_default_model()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, default_model_dir: str) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama", default_model_dir)


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [build_tiny_lora(tiny_dir, root / f"tiny-lora-{n}", seed=100 + n) for n in range(2)]


@pytest.fixture
def tiny_registry(tiny_dir: Path, tiny_adapters: list[Path]) -> Registry:
    """Base (fp32), two adapters, and the base in int8 and nf4."""
    base = str(tiny_dir)
    return Registry(
        [
            Variant(id="tiny", label="tiny base", base=base, dtype="float32"),
            Variant(id="tiny-lora-0", label="tiny lora 0", base=base, adapter=str(tiny_adapters[0]), dtype="float32"),
            Variant(id="tiny-lora-1", label="tiny lora 1", base=base, adapter=str(tiny_adapters[1]), dtype="float32"),
            Variant(id="tiny-int8", label="tiny int8", base=base, quantization="int8", dtype="float32"),
            Variant(id="tiny-nf4", label="tiny nf4", base=base, quantization="nf4", dtype="float32"),
            Variant(id="tiny-qa", label="tiny context_qa", base=base, template="context_qa", dtype="float32"),
        ]
    )


@pytest.fixture
def held_answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldAnswers]:
    """Every answer shows a few tokens, then waits until its run is cancelled (``tests/held.py``): a run that is
    still going whenever the test stops it, on a machine of any speed."""
    held = HeldAnswers().install(monkeypatch)
    yield held
    held.release()
