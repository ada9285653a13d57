"""What only a real process can show: votes survive ``kill -9`` of the server, the server log holds no
secret, and the votes database on a full or read-only disk fails with a message and loses nothing.

The disk cases mount a small tmpfs (and remount it read-only) in a private mount namespace
(``unshare -m``), so nothing leaks to the machine; they need root and are skipped without it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gradio_client import Client

from medalpaca_core.arena.export import Comparison
from medalpaca_core.arena.votes import ALL_BAD, VOTES_FILE, VoteStorageError, VoteStore
from medalpaca_core.generation.answers import Answer
from medalpaca_core.generation.settings import PRESETS
from medalpaca_core.runtime.paths import PROJECT_ROOT
from tests.app_server import ECHO, compare, free_port, serving, vote, wait_until

SECRET_TOKEN = "hf_reliabilityTestSecretToken0123456789"
PRIVATE_QUESTION = "My neighbour Jane Doe, born 1970-01-02, has chest pain"
STARTUP_S = 180


@contextmanager
def app_process(tiny_dir: Path, adapters: list[Path], home: Path, model_dir: str, log: Path) -> Iterator[tuple]:
    """The tiny app in its own process (``python -m tests.app_server``); yields (process, URL)."""
    port = free_port()
    env = {
        **os.environ,
        "MEDALPACA_HOME": str(home),
        "MEDALPACA_DEFAULT_MODEL": model_dir,
        "HF_HUB_OFFLINE": "1",
        "HF_TOKEN": SECRET_TOKEN,
    }
    env.pop("GRADIO_SERVER_NAME", None)
    command = [sys.executable, "-m", "tests.app_server", str(tiny_dir), *map(str, adapters)]
    command += ["--scratch", str(home.parent / "scratch"), "--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: serving(url, process, log), STARTUP_S, step_s=0.5)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def test_votes_survive_kill_9_and_the_log_keeps_no_secret(tmp_path, tiny_dir, tiny_adapters, default_model_dir):
    home, log = tmp_path / "home", tmp_path / "server.log"
    winners = [ECHO, "tiny-lora-0", ALL_BAD]
    with app_process(tiny_dir, tiny_adapters, home, default_model_dir, log) as (server, url):
        client = Client(url, verbose=False)
        for n, winner in enumerate(winners):
            result = compare(client, [ECHO, "tiny-lora-0"], f"{PRIVATE_QUESTION} ({n})")
            vote(client, result["id"], winner)
        server.send_signal(signal.SIGKILL)  # right after the last vote was acknowledged
        assert server.wait(timeout=30) == -signal.SIGKILL
    with app_process(tiny_dir, tiny_adapters, home, default_model_dir, log) as (_, url):
        client = Client(url, verbose=False)
        result = compare(client, [ECHO], PRIVATE_QUESTION)
        vote(client, result["id"], ECHO)
        _, board, _ = client.predict("unblinded", api_name="/leaderboard")  # after the fourth vote
    rows = {row[0]: row[3] for row in board["data"]}  # the votes that showed each variant
    assert rows == {ECHO: "4", "tiny-lora-0": "3"}, board
    with sqlite3.connect(home / "data" / VOTES_FILE) as database:
        assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert database.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 4
    text = log.read_text(errors="replace")
    assert SECRET_TOKEN not in text and "Jane Doe" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


# --- the votes database on a disk that fills up or turns read-only -------------------------------------


def comparison(answer: str) -> Comparison:
    answers = {"a": Answer("a", answer, "done"), "b": Answer("b", "", "error", "b is unavailable")}
    return Comparison.from_answers("Symptoms of diabetes?", "", PRESETS["greedy"], answers)


def mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True, capture_output=True)


def storage_child(folder: str, scenario: str) -> None:
    """Runs inside ``unshare -m``: votes on a 256 KiB tmpfs that fills up, or that turns read-only."""
    data = Path(folder)
    mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(data))
    store, saved, errors = VoteStore(data / VOTES_FILE), 0, []
    if scenario == "full":
        while not errors and saved < 1000:
            try:
                store.record(comparison("Thirst and tiredness. " * 400), "a")  # ~9 KB a vote
                saved += 1
            except VoteStorageError as error:
                errors.append(str(error))
        assert store.leaderboard()  # reading goes on on a full disk
    else:
        for _ in range(3):
            store.record(comparison("Thirst."), "a")
            saved += 1
        mount("-o", "remount,ro", str(data))
        for action in (lambda: store.record(comparison("Thirst."), "a"), store.leaderboard):
            try:
                action()
            except VoteStorageError as error:
                errors.append(str(error))
        mount("-o", "remount,rw", str(data))
    with sqlite3.connect(data / VOTES_FILE) as database:
        integrity = database.execute("PRAGMA integrity_check").fetchone()[0]
    print(json.dumps({"saved": saved, "stored": store.count(), "errors": errors, "integrity": integrity}))


def run_storage_child(tmp_path: Path, scenario: str) -> dict:
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root and unshare(1) to mount a small or read-only filesystem in a private namespace")
    (tmp_path / "data").mkdir()
    code = "import sys; from tests.ui.test_app_process import storage_child; storage_child(*sys.argv[1:])"
    done = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", code, str(tmp_path / "data"), scenario],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_full_disk_refuses_the_vote_with_a_message_and_keeps_the_others(tmp_path):
    result = run_storage_child(tmp_path, "full")
    full = "Cannot save the vote: the disk holding the data folder is full. Votes saved before are kept."
    assert result["errors"] == [full], result
    assert result["saved"] > 5 and result["stored"] == result["saved"] and result["integrity"] == "ok", result


def test_a_read_only_data_folder_refuses_the_vote_with_a_message_and_keeps_the_others(tmp_path):
    result = run_storage_child(tmp_path, "read-only")
    kept = "the data folder is read-only or cannot be created. Votes saved before are kept."
    assert result["errors"] == [f"Cannot save the vote: {kept}", f"Cannot read the leaderboard: {kept}"], result
    assert result["stored"] == result["saved"] == 3 and result["integrity"] == "ok", result
