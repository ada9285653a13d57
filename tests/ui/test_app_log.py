"""What a hostile visitor got through (issue 17), each held shut over real HTTP against the tiny-model app.

The server runs in this process, so its log is this process's stderr (``capfd``) plus its log records
(``caplog``): what a request adds to both is what it wrote into the server's log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from app import build_demo
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation.folder_cache import FolderCache
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.runtime.paths import PROJECT_ROOT, public_paths
from medalpaca_core.serving.ratelimit import RateLimit, RateLimiter
from tests.app_server import ECHO, SHORT, wait_until
from tests.held import FREE_PASSES, HeldQuestions
from ui.http.guard import MAX_LINE_CHARS, MAX_RECORD_CHARS, BoundedFormatter
from ui.tabs.evaluate import EvaluateTab

pytest_plugins = ["tests.app_server"]

MB = 1_000_000
SMALL_LOG = 400  # bytes a refused request may add to the log: one summary line


class LogGrowth:
    """Bytes the server wrote to its log (stderr and log records) since the last ``take``."""

    def __init__(self, capfd, caplog):
        self.capfd, self.caplog = capfd, caplog
        self.take()

    def take(self) -> str:
        captured = self.capfd.readouterr()
        text = captured.err + captured.out + self.caplog.text
        self.caplog.clear()
        return text


@pytest.fixture
def log(capfd, caplog) -> LogGrowth:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="httpx")  # this test's own client, not the server
    return LogGrowth(capfd, caplog)


def fn_index(url: str, api_name: str) -> int:
    config = httpx.get(f"{url}/config", timeout=30).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)


@contextmanager
def raw_event(url: str, api_name: str, data: list) -> Iterator[Iterator[dict]]:
    """Join ``api_name`` with ``data`` as raw JSON and iterate the server's messages for it."""
    session = uuid.uuid4().hex
    body = {"data": data, "fn_index": fn_index(url, api_name), "session_hash": session}
    text = json.dumps({**body, "event_data": None, "trigger_id": None})
    with httpx.Client(timeout=60) as http:
        join = http.post(f"{url}/gradio_api/queue/join", content=text, headers={"content-type": "application/json"})
        join.raise_for_status()
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as response:
            yield (json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:"))


def run_raw(url: str, api_name: str, data: list) -> dict:
    with raw_event(url, api_name, data) as messages:
        return next(m for m in messages if m.get("msg") == "process_completed")


# --- 1. what a visitor sent stays out of the log ---------------------------------------------------------


def test_one_input_too_few_with_a_1mb_question_is_not_logged(tiny_app, log):
    url, _ = tiny_app
    question = "q" * MB
    refused = run_raw(url, "compare", [[ECHO], question, "", 0, 1, 0, 16, None])  # the blind flag is missing
    assert not refused["success"]
    assert "takes 9 input values; 8 were sent" in refused["output"]["error"]
    logged = log.take()
    assert len(logged.encode()) < SMALL_LOG and "qqqq" not in logged, logged[:1000]


def test_an_unknown_1mb_variant_id_is_echoed_nowhere(tiny_app, log):
    url, _ = tiny_app
    ident = "v" * MB
    refused = run_raw(url, "compare", [[ident], "What is asthma?", "", 0, 1, 0, 16, None, False])
    message = refused["output"]["error"]
    assert not refused["success"] and "not in the list of choices" in message and len(message) < 400, message[:1000]
    logged = log.take()
    assert len(logged.encode()) < SMALL_LOG and "vvvv" not in logged, logged[:1000]


def test_a_malformed_1mb_body_is_refused_without_echoing_it(tiny_app, log):
    url, _ = tiny_app
    body = json.dumps({"data": "d" * MB, "fn_index": "x", "session_hash": 5})
    response = httpx.post(f"{url}/gradio_api/queue/join", content=body, timeout=60)
    assert response.status_code == 422 and len(response.content) < 2000 and "dddd" not in response.text
    assert len(log.take().encode()) < SMALL_LOG


def test_no_log_record_exceeds_a_fixed_size():
    formatter = BoundedFormatter("%(name)s: %(message)s")
    try:
        raise ValueError("e" * MB)
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "%s", ("m" * MB,), sys.exc_info())
    text = formatter.format(record)
    assert "Traceback" in text and "ValueError" in text
    assert len(text) < MAX_RECORD_CHARS + 100 and max(map(len, text.splitlines())) < MAX_LINE_CHARS + 100


# --- 6. typed validation at the API boundary -----------------------------------------------------------

COMPARE = {"variant_ids": [ECHO], "question": "What is asthma?", "context": "", **SHORT, "blind": False}
CHAT = {"variant_id": ECHO, "message": "Hello", "history": None, **SHORT}
EVALUATE = {"variant_ids": [ECHO], "source": "sample", "files": None, "mode": "loglik", "limit": 1}


@pytest.mark.parametrize(
    ("api_name", "inputs", "field", "message"),
    [
        ("compare", COMPARE, {"max_new_tokens": 1.5}, "max_new_tokens must be a whole number, not 1.5"),
        ("compare", COMPARE, {"top_k": 2.5}, "top_k must be a whole number, not 2.5"),
        ("compare", COMPARE, {"temperature": True}, "temperature must be a number, not a boolean"),
        ("compare", COMPARE, {"top_p": "abc"}, "top_p must be a number, not text ('abc')"),
        ("compare", COMPARE, {"seed": float("inf")}, "seed must be a finite number, not inf"),
        ("compare", COMPARE, {"variant_ids": ECHO}, "variant_ids must be a list of ids, not text ('echo')"),
        ("compare", COMPARE, {"variant_ids": [ECHO, 7]}, "each of variant_ids must be text, not a number ('7')"),
        ("compare", COMPARE, {"question": {"a": 1}}, "question must be text, not an object"),
        ("chat", CHAT, {"variant_id": [ECHO]}, "variant_id must be text, not a list"),
        ("chat", CHAT, {"max_new_tokens": "16"}, "max_new_tokens must be a number, not text ('16')"),
        ("evaluate", EVALUATE, {"limit": "abc"}, "limit must be a number, not text ('abc')"),
        ("evaluate", EVALUATE, {"limit": float("nan")}, "limit must be a finite number, not nan"),
        ("evaluate", EVALUATE, {"limit": 2.5}, "limit must be a whole number, not 2.5"),
        ("evaluate", EVALUATE, {"files": "step1.json"}, "files must be a list of uploaded files"),
        ("vote", {"comparison_id": None, "choice": None}, {"choice": ["a"]}, "choice must be text, not a list"),
        ("compare", COMPARE, {"blind": "yes"}, "blind must be true or false, not text ('yes')"),
        ("compare", COMPARE, {"blind": [True]}, "blind must be true or false, not a list"),
        ("compare", COMPARE, {"seed": 1e40}, "seed must be between 0 and 4,294,967,295, not 1e+40"),
        ("compare", COMPARE, {"seed": -1}, "seed must be between 0 and 4,294,967,295, not -1"),
        ("compare", COMPARE, {"max_new_tokens": 1e308}, "max_new_tokens must be between 1 and 512, not 1e+308"),
        ("chat", CHAT, {"temperature": -0.5}, "temperature must be between 0 and 2, not -0.5"),
        ("evaluate", EVALUATE, {"limit": 1e300}, "limit must be between 1 and 100,000, not 1e+300"),
        ("evaluate", EVALUATE, {"limit": 0}, "limit must be between 1 and 100,000, not 0"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_field(tiny_app, log, api_name, inputs, field, message):
    url, _ = tiny_app
    refused = run_raw(url, api_name, list({**inputs, **field}.values()))
    assert not refused["success"] and message in refused["output"]["error"], refused["output"]
    logged = log.take()
    assert len(logged.encode()) < SMALL_LOG and "Traceback" not in logged, logged[:1000]


# --- 5. no absolute server path in a message or a public view ------------------------------------------


def server_paths(home: Path) -> list[str]:
    """The absolute folders a visitor must not learn: the install, the environment, the data and temp folders."""
    return [str(PROJECT_ROOT), sys.prefix, str(Path(sys.prefix).resolve()), str(home), tempfile.gettempdir()]


def test_config_models_and_messages_name_no_absolute_server_path(tiny_app, tmp_path):
    url, home = tiny_app
    config = httpx.get(f"{url}/config", timeout=30).text
    models = json.dumps(Client(url, verbose=False).predict(api_name="/models"))
    (tmp_path / "step1.json").write_text('[{"question": "q", "options": {"A": "x", "B": "y"}}]')
    with pytest.raises(AppError) as refused:  # the solutions file is missing: the message names it
        Client(url, verbose=False).predict(
            [ECHO], "upload", [handle_file(str(tmp_path / "step1.json"))], "loglik", 1, api_name="/evaluate"
        )
    assert "step1_solutions.json is missing" in str(refused.value)
    assert "$MEDALPACA_HOME" in public_paths(str(home / "data")) and "<temp>/" in models
    for path in server_paths(home):
        for shown in (config, models, str(refused.value)):
            assert path not in shown, (path, shown[shown.find(path) - 200 : shown.find(path) + 200])


# --- 2. evaluations are cancellable runs, in the generation slots, priced by size ------------------------


@pytest.fixture
def held_questions(monkeypatch) -> Iterator[HeldQuestions]:
    """An evaluation makes one pass (a question, or up to 16 scored together), then waits at the next until it is
    cancelled (``tests/held.py``)."""
    held = HeldQuestions().install(monkeypatch)
    yield held
    held.release()


def evaluation_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "medalpaca-evaluate"]


def test_evaluations_take_the_generation_slots(tiny_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDALPACA_HOME", str(tmp_path))
    demo = build_demo(Studio(tiny_registry, ModelManager(device="cpu")), RateLimiter(None))
    slots = {fn.api_name: fn.concurrency_id for fn in demo.fns.values() if fn.api_name}
    assert slots["evaluate"] == slots["compare"] == slots["chat"]


def test_stop_ends_an_evaluation_at_the_next_question(tiny_app, held_questions):
    url, _ = tiny_app
    client = Client(url, verbose=False)
    job = client.submit(["tiny-lora-1"], "sample", None, "loglik", None, api_name="/evaluate")
    assert held_questions.reached.wait(120)
    client.predict(api_name="/stop_evaluate")
    table, _, results = job.result(timeout=60)
    assert re.search(r"Stopped after question \d+ of 45\*\*: the scores below cover", table) and results is not None
    assert len(held_questions.passes) == FREE_PASSES + 1  # the pass in progress ends the run
    progress = [str(update[0]) for update in job.outputs() if "Evaluating…" in str(update[0])]  # streamed meanwhile
    assert any(re.search(r"Question \d+ of 45 done \(loglik · step\d, question \d+\)", text) for text in progress)


def test_a_client_that_leaves_cancels_its_evaluation(tiny_app, held_questions):
    url, _ = tiny_app
    with raw_event(url, "evaluate", [["tiny-lora-2"], "sample", None, "loglik", None]) as messages:
        next(m for m in messages if m.get("msg") == "process_starts")
        assert held_questions.reached.wait(120)
    wait_until(lambda: not evaluation_threads(), 120)  # held: only the client's leaving can end it
    assert len(held_questions.passes) == FREE_PASSES + 1  # no question asked after the client left


def test_an_evaluation_costs_rate_limit_units_by_its_size(tiny_registry):
    limiter = RateLimiter(RateLimit(4, 60))
    tab = EvaluateTab(Studio(tiny_registry, ModelManager(device="cpu")), limiter)
    request = SimpleNamespace(client=SimpleNamespace(host="10.9.9.9"), session_hash="s")
    limiter.admit("10.9.9.9", 2)
    run = tab.evaluate(["tiny", "tiny-lora-0"], "sample", None, "both", None, request)  # 45 x 2 x 2 = 180 answers
    with pytest.raises(gr.Error, match="An evaluation of 180 answers counts as 9 requests"):
        next(run)


# --- 4. temporary folders and uploaded exams do not pile up ---------------------------------------------


def in_private(monkeypatch, private: Path) -> None:
    """The app's temporary folders (prefix medalpaca-) are made in ``private``; Gradio's own stay where they are."""
    mkdtemp, temporary_directory = tempfile.mkdtemp, tempfile.TemporaryDirectory

    def place(prefix: str | None, folder: str | None) -> str | None:
        return str(private) if (prefix or "").startswith("medalpaca-") else folder

    monkeypatch.setattr(
        tempfile, "mkdtemp", lambda suffix=None, prefix=None, dir=None: mkdtemp(suffix, prefix, place(prefix, dir))
    )
    monkeypatch.setattr(
        tempfile,
        "TemporaryDirectory",
        lambda suffix=None, prefix=None, dir=None, **kw: temporary_directory(suffix, prefix, place(prefix, dir), **kw),
    )


def test_no_temporary_folder_outlives_its_evaluation(tiny_app, tmp_path, monkeypatch, held_questions):
    url, _ = tiny_app
    private = tmp_path / "tmp"
    private.mkdir()
    in_private(monkeypatch, private)
    client = Client(url, verbose=False)
    client.predict(["tiny-lora-0"], "sample", None, "loglik", 1, api_name="/evaluate")  # success
    job = client.submit(["tiny-lora-0"], "sample", None, "loglik", None, api_name="/evaluate")
    assert held_questions.reached.wait(120)
    client.predict(api_name="/stop_evaluate")
    job.result(timeout=30)  # stopped
    step = tmp_path / "step1.json"
    step.write_text('[{"question": "q", "options": {"A": "x", "B": "y"}}]')
    with pytest.raises(AppError):  # no solutions file: an error
        client.predict(["tiny-lora-0"], "upload", [handle_file(str(step))], "loglik", 1, api_name="/evaluate")
    assert not [path.name for path in private.iterdir() if path.name.startswith("medalpaca-")]


def test_uploaded_exams_results_stay_in_a_bounded_cache(tiny_app, tmp_path):
    url, home = tiny_app
    (tmp_path / "step1.json").write_text('[{"question": "q", "options": {"A": "x", "B": "y"}}]')
    (tmp_path / "step1_solutions.json").write_text('{"1": "B"}')
    files = [handle_file(str(tmp_path / name)) for name in ("step1.json", "step1_solutions.json")]
    Client(url, verbose=False).predict(["tiny-lora-0"], "upload", files, "loglik", 1, api_name="/evaluate")
    evaluations = home / "data" / "evaluations"
    assert not list(evaluations.glob("uploaded*")) and len(list((evaluations / "uploads").iterdir())) >= 1


def test_the_folder_cache_keeps_within_its_size_and_age(tmp_path):
    cache = FolderCache(tmp_path / "cache", max_bytes=5 * MB, max_age_s=3600)
    now = time.time()
    for n in range(30):
        folder = cache.root / f"exam-{n}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_bytes(b"x" * MB)
        age = 7200 if n < 5 else 60 * (30 - n)  # five expired, the rest younger the higher n
        os.utime(folder, (now - age, now - age))
    current = cache.root / "exam-0"  # the oldest, but in use: kept
    cache.prune(keep=current)
    kept = sorted(cache.root.iterdir(), key=lambda path: int(path.name.split("-")[1]))
    assert [path.name for path in kept] == ["exam-0", *(f"exam-{n}" for n in range(25, 30))]
