"""Remote variants: columns answered by an OpenAI-compatible server, on loopback only.

End to end, one studio serves ``/v1`` and a second uses it as a remote variant. The failures (a server
that refuses the key, dies mid-answer, stops sending, or is not there) come from a small fake server
in this process, so each is exact and fast.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medalpaca_core.engine import Studio
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import USER_REGISTRY_ENV, Registry, RegistryError, Variant, availability
from medalpaca_core.models.remote import request_body
from medalpaca_core.runtime.hosting import SPACE_ENV
from medalpaca_core.serving.openai_api import ENABLE_ENV, KEY_ENV
from medalpaca_core.text.prompts import PromptParts, render
from tests.app_server import CONTEXT, QUESTION, TRIO, EchoStudio, free_port, serve, tiny_app_registry

pytest_plugins = ["tests.app_server"]

SETTINGS = GenerationSettings(max_new_tokens=16)
TIMEOUT_S = 2.0  # how long the hanging server's variant waits for the next piece
PATIENT_S = 120.0  # the other failures must be told apart from a timeout however slow the machine is


def remote(ident: str, endpoint: str, **fields) -> Variant:
    return Variant(id=ident, label=ident, base=ident, endpoint=endpoint, model="tiny-lora-0", **fields)


# --- the request and the registry ------------------------------------------------------------------------


def test_the_prompt_is_rendered_here_and_sent_raw_or_as_chat_messages():
    parts = PromptParts(QUESTION, CONTEXT)
    path, body = request_body(remote("r", "http://127.0.0.1:1/v1"), parts, False, SETTINGS)
    assert (path, body["prompt"], body["model"]) == ("/completions", render("medalpaca", parts), "tiny-lora-0")
    assert (body["max_tokens"], body["temperature"], body["stream"]) == (16, 0.0, True)
    path, body = request_body(remote("c", "http://127.0.0.1:1/v1", template="chat"), parts, False, SETTINGS)
    assert path == "/chat/completions"
    assert body["messages"] == [{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}]


def test_a_user_registry_file_adds_and_replaces_variants(tmp_path, monkeypatch):
    mine = tmp_path / "my-variants.yaml"
    mine.write_text(
        "variants:\n"
        "  - {id: medalpaca-13b, label: 13b on our GPU, endpoint: 'http://127.0.0.1:8000/v1', model: medalpaca-13b}\n"
        "  - {id: lora-on-vllm, label: LoRA on vLLM, endpoint: 'http://127.0.0.1:8000/v1', model: lora,"
        " api_key_env: MY_VLLM_KEY}\n"
    )
    monkeypatch.setenv(USER_REGISTRY_ENV, str(mine))
    monkeypatch.delenv("MY_VLLM_KEY", raising=False)
    registry = Registry.load(finetuned=tmp_path / "none")
    assert registry.get("medalpaca-13b").remote and registry.get("medalpaca-13b").kind == "remote"
    assert registry.ids().index("medalpaca-13b") < registry.ids().index("lora-on-vllm")  # replaced in place
    assert "smol-base" in registry  # the shipped entries stay
    assert ModelManager(device="cpu").estimate_for(registry.get("lora-on-vllm")) is None  # no local memory
    assert "MY_VLLM_KEY" in availability(registry.get("lora-on-vllm")).reason
    monkeypatch.setenv("MY_VLLM_KEY", "k")
    assert availability(registry.get("lora-on-vllm")).ok
    mine.write_text("variants:\n  - {id: bad, label: Bad, endpoint: 'file:///etc/passwd'}\n")
    with pytest.raises(RegistryError, match="endpoint must be an http"):
        Registry.load(finetuned=tmp_path / "none")


# --- end to end: a studio as another studio's remote variant ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_registry_parts(tmp_path_factory, tiny_dir, tiny_adapters):
    return tiny_dir, tiny_adapters, tmp_path_factory.mktemp("scratch")


def test_a_studio_answers_as_another_studios_remote_variant(tiny_registry_parts, tmp_path, default_model_dir):
    """Studio A serves /v1 (the web app's server); studio B asks it for tiny-lora-0 as a remote variant, beside
    its own local copy of the same adapter: the same greedy answer, with stats from the stream."""
    with pytest.MonkeyPatch.context() as env:
        for name in (SPACE_ENV, KEY_ENV, ENABLE_ENV):
            env.delenv(name, raising=False)
        server = EchoStudio(tiny_app_registry(*tiny_registry_parts), ModelManager(device="cpu"))
        with serve(server, tmp_path / "server-home", default_model_dir) as server_url:
            registry = tiny_app_registry(*tiny_registry_parts)
            registry.add(remote("remote-lora-0", f"{server_url}/v1", timeout_s=120))
            studio = Studio(registry, ModelManager(device="cpu"))
            answers = studio.ask(["remote-lora-0", TRIO[0]], QUESTION, CONTEXT, SETTINGS)
    far, near = answers["remote-lora-0"], answers[TRIO[0]]
    assert far.status == "done" and far.text.strip() and far.text == near.text  # the same files, the same answer
    assert far.stats.quantization == "remote" and far.stats.memory_bytes == 0 and far.stats.ttft_s is not None
    assert far.stats.new_tokens == near.stats.new_tokens  # counted by the server (its usage report)
    assert len(studio.manager.loaded()) == 1  # B loaded its own tiny base only, nothing for the remote


# --- failures, from a fake server ---------------------------------------------------------------------------


def chunk(text: str) -> bytes:
    return f"data: {json.dumps({'choices': [{'index': 0, 'text': text, 'finish_reason': None}]})}\n\n".encode()


class FakeServer(BaseHTTPRequestHandler):
    """``/refuse/v1``: 401; ``/dies/v1``: two pieces of text, then the connection drops; ``/hangs/v1``: two
    pieces, then nothing until the test is over (``hang_ends``), however long the client waits."""

    hang_ends = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path.startswith("/refuse"):
            body = json.dumps({"error": {"message": "Invalid API key", "type": "authentication_error"}}).encode()
            self.send_response(401)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(chunk("Polyuria and") + chunk(" thirst"))
        self.wfile.flush()
        if self.path.startswith("/hangs"):
            self.hang_ends.wait()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@contextmanager
def fake_server() -> Iterator[str]:
    FakeServer.hang_ends.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        FakeServer.hang_ends.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/refuse/v1", r"refused the API key \(HTTP 401\): Invalid API key"),
        ("/dies/v1", "the stream ended before the answer did|the connection broke"),
        ("/hangs/v1", f"no answer within {TIMEOUT_S:g} s"),
        (None, "cannot reach http://127.0.0.1"),
    ],
    ids=["401", "dies-mid-stream", "stops-sending", "unreachable"],
)
def test_a_failing_remote_ends_its_column_with_an_error_and_the_others_finish(tiny_registry_parts, path, message):
    registry = tiny_app_registry(*tiny_registry_parts)
    with fake_server() as url:
        endpoint = url + path if path else f"http://127.0.0.1:{free_port()}/v1"
        registry.add(remote("far", endpoint, timeout_s=TIMEOUT_S if path == "/hangs/v1" else PATIENT_S))
        started, ended = time.perf_counter(), None
        for answers in Studio(registry, ModelManager(device="cpu")).stream(["far", TRIO[0]], QUESTION, "", SETTINGS):
            if ended is None and answers["far"].finished:
                ended = time.perf_counter() - started
    assert answers["far"].status == "error"
    assert re.search(message, answers["far"].error), answers["far"].error
    assert answers[TRIO[0]].status == "done" and answers[TRIO[0]].text.strip()  # the other column finished
    if path == "/hangs/v1":
        assert ended < TIMEOUT_S * 10, f"the column waited {ended:.1f} s for a server that stopped sending"
