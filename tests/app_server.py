"""The web app served on a free localhost port for the app tests (HTTP client and browser), and their helpers.

The app runs on the tiny random LLaMA, plus variants that exercise every failure the page must
report: one unavailable offline, one whose adapter file is corrupt (it fails while loading), and
``echo``, which answers with the question itself so a test controls exactly what "the model" says.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from app import api_routes, build_demo, launch
from medalpaca_core.engine import Request, Studio
from medalpaca_core.generation.answers import Answer, Stats
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Registry, Variant
from medalpaca_core.runtime.hosting import SPACE_ENV
from medalpaca_core.serving.ratelimit import RateLimiter
from medalpaca_core.text.prompts import validate_parts
from tests.tiny import build_tiny_lora, corrupt_adapter

ECHO = "echo"
QUESTION = "What are the symptoms of diabetes?"
CONTEXT = "Diabetes is a chronic disease of high blood sugar."
TRIO = ["tiny-lora-0", "tiny-lora-1", "tiny-lora-2"]
BASE = "tiny-base"  # the bare tiny base, only in the public app (its answers are whitespace)
SHORT = {"temperature": 0, "top_p": 1, "top_k": 0, "max_new_tokens": 16, "seed": None}


class EchoStudio(Studio):
    """A studio in which the ``echo`` variant repeats the question; every other variant runs for real."""

    def stream_requests(
        self, requests: list[Request], settings: GenerationSettings | None = None, cancel=None
    ) -> Iterator[dict[str, Answer]]:
        stats = Stats(0, 1, 0.0, 0.0, 0, "none", False, "eos")
        echoed = {
            r.variant_id: Answer(ECHO, validate_parts(r.parts).question, "done", None, stats)
            for r in requests
            if r.variant_id == ECHO
        }
        rest = [request for request in requests if request.variant_id != ECHO]
        if echoed and not rest:
            return iter([echoed])
        return ({**snapshot, **echoed} for snapshot in super().stream_requests(rest, settings, cancel))


# What /compare and /vote return to gradio_client, in order (layouts are left out): per column, its answer,
# status line, notes, prompt and formatted answer (ui.tabs.compare.Slot.outputs less the layouts), then the run line,
# the comparison id, the vote choices, the vote message and the two downloads.
COLUMN_OUTPUTS = 5


def page(outputs) -> dict:
    """The outputs of /compare or /vote as a dict: answers by column label (text, status), notes and prompts
    by label, and the rest by name."""
    columns = [outputs[COLUMN_OUTPUTS * n : COLUMN_OUTPUTS * (n + 1)] for n in range(4)]
    shown = [column for column in columns if column[0]["label"] != "Answer"]
    rest = outputs[COLUMN_OUTPUTS * 4 :]
    return {
        "answers": {answer["label"]: (answer["value"], status) for answer, status, *_ in shown},
        "notes": {answer["label"]: notes for answer, _, notes, *_ in shown},
        "prompts": {answer["label"]: prompt for answer, _, _, prompt, _ in shown},
        "formatted": {answer["label"]: formatted for answer, *_, formatted in shown},
        "run": rest[0],
        "id": rest[1],
        "vote": rest[2],
        "message": rest[3],
        "files": rest[4:6],
    }


def compare(client: Client, variants, question=QUESTION, context=CONTEXT, blind=False, **settings):
    """Run /compare (names shown unless ``blind``); return its final outputs as a dict (``page``)."""
    job = client.submit(variants, question, context, *{**SHORT, **settings}.values(), blind, api_name="/compare")
    outputs = job.result()  # not `for _ in job`: gradio_client iterates a refused job ("Queue is full") forever
    return page(outputs)


def wait_until(condition, timeout_s: float, step_s: float = 0.02) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s`` (a bound for a hang, never a speed target)."""
    started = time.perf_counter()
    while not condition():
        assert time.perf_counter() - started < timeout_s, f"not within {timeout_s} s"
        time.sleep(step_s)
    return time.perf_counter() - started


def ready(url: str) -> bool:
    """Whether the app at ``url`` answers (its config), for a test that waits for a server it started."""
    try:
        return httpx.get(f"{url}/config", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def serving(url: str, process: subprocess.Popen, log: Path) -> bool:
    """``ready``, but a process that ended fails the wait at once, with the tail of its ``log``."""
    assert process.poll() is None, log.read_text(errors="replace")[-3000:]
    return ready(url)


def streamed(job, condition, timeout_s: float = 120) -> list:
    """The first output ``job`` streamed for which ``condition`` holds; fails if the job ends without one."""
    found: list = []

    def seen() -> bool:
        found[:] = [outputs for outputs in job.outputs() if condition(outputs)][:1]
        return bool(found) or job.done()

    wait_until(seen, timeout_s)
    assert found, f"no such output before the job ended: {job.outputs()[-1:]}"
    return found[0]


def vote(client: Client, comparison_id: str | None, choice: str | None) -> dict:
    """Vote on a comparison by its id for a column label, "tie" or "all-bad"; the page after the vote."""
    return page(client.predict(comparison_id, choice, api_name="/vote"))


def tiny_app_registry(tiny_dir: Path, tiny_adapters: list[Path], scratch: Path) -> Registry:
    """Three LoRA variants on one tiny base (the bare random base answers only whitespace), and the odd ones."""
    base = str(tiny_dir)
    adapters = [*tiny_adapters, build_tiny_lora(tiny_dir, scratch / "tiny-lora-2", seed=102)]
    loras = [
        Variant(id=f"tiny-lora-{n}", label=f"Tiny LoRA {n}", base=base, adapter=str(folder), dtype="float32")
        for n, folder in enumerate(adapters)
    ]
    broken = corrupt_adapter(scratch / "broken-lora", tiny_adapters[0])
    return Registry(
        [
            *loras,
            Variant(id="offline-hub", label="Hub model (offline)", base="medalpaca/medalpaca-7b"),
            Variant(id="broken", label="Corrupt adapter", base=base, adapter=str(broken), dtype="float32"),
            Variant(id=ECHO, label="Echo (test)", base=base, adapter=str(tiny_adapters[0]), dtype="float32"),
        ]
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(
    studio: Studio,
    home: Path | None,
    default_model_dir: str,
    limiter: RateLimiter | None = None,
    public: bool = False,
    **options,
) -> Iterator[str]:
    """Serve the app built on ``studio`` with MEDALPACA_HOME at ``home`` (unset for None: the app picks its
    own data folder, as on a Space); yields its URL.

    ``limiter`` defaults to no rate limit (the app tests send many requests from one address); ``public``
    builds the page as a Space would (blind comparisons only) while the server stays a local one;
    ``options`` go to ``app.launch`` (``queue_size``, for instance).
    """
    with pytest.MonkeyPatch.context() as env:
        if home is None:
            env.delenv("MEDALPACA_HOME", raising=False)
        else:
            env.setenv("MEDALPACA_HOME", str(home))
        env.setenv("MEDALPACA_DEFAULT_MODEL", default_model_dir)  # no second conversion into the new home
        limiter = limiter or RateLimiter(None)
        with pytest.MonkeyPatch.context() as space:
            if public:
                space.setenv(SPACE_ENV, "medalpaca/studio-test")
            demo = build_demo(studio, limiter)
        routes = api_routes(studio, limiter)
        _, url, _ = launch(
            demo, server_port=free_port(), prevent_thread_lock=True, quiet=True, routes=routes, **options
        )
        try:
            yield url.rstrip("/")
        finally:
            demo.close()


@pytest.fixture(scope="module")
def tiny_app(tmp_path_factory, tiny_dir, tiny_adapters, default_model_dir) -> Iterator[tuple[str, Path]]:
    """(URL, MEDALPACA_HOME) of the app on the tiny registry."""
    home = tmp_path_factory.mktemp("home")
    registry = tiny_app_registry(tiny_dir, tiny_adapters, tmp_path_factory.mktemp("scratch"))
    with serve(EchoStudio(registry, ModelManager(device="cpu")), home, default_model_dir) as url:
        yield url, home


@pytest.fixture(scope="module")
def public_app(tmp_path_factory, tiny_dir, tiny_adapters, default_model_dir) -> Iterator[tuple[str, Path]]:
    """(URL, MEDALPACA_HOME) of the tiny app as a Space serves it (blind comparisons only), with the bare tiny base
    beside its adapters so that adapter lines have a base to depart from."""
    home = tmp_path_factory.mktemp("public-home")
    registry = tiny_app_registry(tiny_dir, tiny_adapters, tmp_path_factory.mktemp("scratch"))
    registry.add(Variant(id=BASE, label="Tiny base", base=str(tiny_dir), dtype="float32"))
    with serve(EchoStudio(registry, ModelManager(device="cpu")), home, default_model_dir, public=True) as url:
        yield url, home


@pytest.fixture
def default_app(tmp_path, default_model_dir) -> Iterator[tuple[str, Studio]]:
    """(URL, studio) of the app as shipped: the real registry and the real default model."""
    studio = Studio(Registry.load(finetuned=tmp_path / "finetuned"), ModelManager(device="cpu"))
    with serve(studio, tmp_path / "home", default_model_dir) as url:
        yield url, studio


def main() -> None:
    """``python -m tests.app_server TINY_DIR ADAPTER... --scratch DIR --port N``: the tiny app in its own process,
    for tests that must kill a real server (MEDALPACA_HOME and MEDALPACA_DEFAULT_MODEL come from the environment)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("tiny_dir", type=Path)
    parser.add_argument("adapters", type=Path, nargs="+")
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    registry = tiny_app_registry(args.tiny_dir, args.adapters, args.scratch)
    launch(build_demo(EchoStudio(registry, ModelManager(device="cpu"))), server_port=args.port, quiet=True)


if __name__ == "__main__":
    main()
