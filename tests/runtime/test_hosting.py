"""Running as a Hugging Face Space or behind a proxy: the data folder, the rate limit's client key, ZeroGPU.

The app tests run the tiny app as a Space would (SPACE_ID set, a temporary folder standing in for the
persistent ``/data``), over real HTTP on loopback.
"""

from __future__ import annotations

import importlib.machinery
import sqlite3
import sys
import types

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from medalpaca_core.arena.votes import VOTES_FILE
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.runtime import hosting, paths
from medalpaca_core.runtime.hosting import NOT_PERSISTENT, PERSISTENT_ROOT_ENV, SPACE_ENV, persistence_notice
from medalpaca_core.runtime.paths import PROJECT_ROOT
from medalpaca_core.serving.clients import TRUSTED_PROXY_ENV, client_key
from medalpaca_core.serving.ratelimit import RateLimit, RateLimiter
from tests.app_server import ECHO, EchoStudio, compare, serve, tiny_app_registry, vote

pytest_plugins = ["tests.app_server"]

ALLOWANCE = 2


@pytest.fixture
def space(monkeypatch, tmp_path):
    """This process as a Space with persistent storage at ``tmp_path / 'data'``; returns that folder."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv(SPACE_ENV, "medalpaca/studio")
    monkeypatch.setenv(PERSISTENT_ROOT_ENV, str(root))
    monkeypatch.delenv("MEDALPACA_HOME", raising=False)
    monkeypatch.delenv(TRUSTED_PROXY_ENV, raising=False)
    return root


@pytest.fixture
def off_space(monkeypatch):
    monkeypatch.delenv(SPACE_ENV, raising=False)
    monkeypatch.delenv(TRUSTED_PROXY_ENV, raising=False)


# --- units --------------------------------------------------------------------------------------------


def test_off_a_space_a_forwarded_address_never_counts(off_space):
    assert client_key("127.0.0.1", ["10.0.0.7"]) == "127.0.0.1"
    assert client_key("203.0.113.5", ["10.0.0.7, 10.0.0.8"]) == "203.0.113.5"
    assert client_key(None, ["10.0.0.7"]) == "unknown"


def test_a_trusted_proxy_forwards_the_first_valid_address(off_space, monkeypatch):
    monkeypatch.setenv(TRUSTED_PROXY_ENV, "127.0.0.1, ::1")
    assert client_key("127.0.0.1", ["10.0.0.7, 127.0.0.1"]) == "10.0.0.7"
    assert client_key("::1", ["2001:db8::1"]) == "2001:db8::1"
    assert client_key("203.0.113.5", ["10.0.0.7"]) == "203.0.113.5"  # not the configured proxy
    assert client_key("127.0.0.1", ["not-an-address" * 100]) == "127.0.0.1"  # junk never becomes a key
    assert client_key("127.0.0.1", []) == "127.0.0.1"


def test_on_a_space_every_peer_is_the_proxy(space):
    assert client_key("10.1.2.3", ["198.51.100.4, 10.1.2.3"]) == "198.51.100.4"


def test_a_space_keeps_its_data_on_persistent_storage(space):
    assert paths.home() == space / "medalpaca-studio"
    assert paths.data_dir() == space / "medalpaca-studio" / "data"
    assert persistence_notice() is None


def test_a_space_without_writable_storage_says_once_that_votes_do_not_persist(space, monkeypatch, tmp_path):
    monkeypatch.setenv(PERSISTENT_ROOT_ENV, str(tmp_path / "no-such-mount"))
    assert not paths.home().is_relative_to(tmp_path)
    assert persistence_notice() == NOT_PERSISTENT
    monkeypatch.setenv("MEDALPACA_HOME", str(tmp_path / "home"))  # the owner chose a folder: no notice
    assert persistence_notice() is None


def test_off_a_space_nothing_changes(off_space, monkeypatch, tmp_path):
    monkeypatch.setenv(PERSISTENT_ROOT_ENV, str(tmp_path))
    monkeypatch.delenv("MEDALPACA_HOME", raising=False)
    assert not paths.home().is_relative_to(tmp_path)
    assert persistence_notice() is None


def test_gpu_is_the_function_itself_without_spaces_and_spaces_gpu_with_it(monkeypatch):
    def run():
        return "ran"

    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed (as on the CPU test machines)
    monkeypatch.setattr(hosting.importlib.util, "find_spec", lambda name: None)
    assert hosting.gpu(run) is run
    wrapped = []
    fake = types.ModuleType("spaces")
    fake.__spec__ = importlib.machinery.ModuleSpec("spaces", None)
    fake.GPU = lambda function: wrapped.append(function) or (lambda: "on a GPU: " + function())
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(hosting.importlib.util, "find_spec", lambda name: fake.__spec__)
    assert hosting.gpu(run)() == "on a GPU: ran"
    assert wrapped == [run]


# --- the app as a Space, over HTTP ----------------------------------------------------------------------


def visitor(url: str, address: str | None) -> Client:
    headers = {"X-Forwarded-For": address} if address else {}
    return Client(url, verbose=False, headers=headers)


def use_allowance(client: Client) -> int:
    """Comparisons the client gets before the rate limit refuses it (at most ALLOWANCE + 1 tried)."""
    for admitted in range(ALLOWANCE + 1):
        try:
            compare(client, [ECHO])
        except AppError as error:
            assert "Too many requests" in str(error)
            return admitted
    return ALLOWANCE + 1


@pytest.fixture
def tiny_studio(tiny_dir, tiny_adapters, tmp_path):
    return EchoStudio(tiny_app_registry(tiny_dir, tiny_adapters, tmp_path / "scratch"), ModelManager(device="cpu"))


def test_as_a_space_votes_persist_across_a_restart_and_forwarded_visitors_have_their_own_allowance(
    space, tiny_studio, default_model_dir
):
    votes_file = space / "medalpaca-studio" / "data" / VOTES_FILE
    limiter = RateLimiter(RateLimit(ALLOWANCE, 60))
    with serve(tiny_studio, None, default_model_dir, limiter=limiter) as url:
        assert [use_allowance(visitor(url, address)) for address in ("198.51.100.1", "198.51.100.2")] == [2, 2]
        voter = visitor(url, "198.51.100.3")
        for n in range(ALLOWANCE):
            result = compare(voter, [ECHO], question=f"Question {n}?")
            vote(voter, result["id"], "Model A")  # a Space compares blind
        assert "no persistent storage" not in httpx.get(f"{url}/config").text
    with sqlite3.connect(votes_file) as connection:
        assert connection.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == ALLOWANCE
    with serve(tiny_studio, None, default_model_dir, limiter=RateLimiter(None)) as url:  # the Space restarted
        voter = visitor(url, "198.51.100.3")
        result = compare(voter, [ECHO], question="After the restart?")
        vote(voter, result["id"], "Model A")
    with sqlite3.connect(votes_file) as connection:  # the votes before the restart: 0 lost
        assert connection.execute("SELECT COUNT(*) FROM votes WHERE blind = 1").fetchone()[0] == ALLOWANCE + 1


def test_without_persistent_storage_the_page_says_so(space, monkeypatch, tmp_path, tiny_studio, default_model_dir):
    monkeypatch.setenv(PERSISTENT_ROOT_ENV, str(tmp_path / "no-such-mount"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serve(tiny_studio, None, default_model_dir) as url:
        assert "no persistent storage" in httpx.get(f"{url}/config").text


def test_off_a_space_a_forged_forwarded_address_changes_nothing(off_space, tiny_studio, default_model_dir, tmp_path):
    limiter = RateLimiter(RateLimit(ALLOWANCE, 60))
    with serve(tiny_studio, tmp_path / "home", default_model_dir, limiter=limiter) as url:
        assert use_allowance(visitor(url, None)) == ALLOWANCE
        # the same machine claiming to be others: still the one socket address, with no allowance left
        assert [use_allowance(visitor(url, forged)) for forged in ("10.0.0.1", "10.0.0.2")] == [0, 0]


def test_readme_front_matter_configures_the_space():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    front, body = readme.removeprefix("---\n").split("\n---\n", 1)
    fields = dict(line.split(": ", 1) for line in front.splitlines())
    pinned = next(line for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines() if "gradio==" in line)
    assert readme.startswith("---\n") and fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    assert pinned == f"gradio=={fields['sdk_version']}" and len(fields["short_description"]) <= 60
    assert body.lstrip().startswith("# MedAlpaca Studio\n\n```bash\nmake demo")
