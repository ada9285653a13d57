"""Every public endpoint fuzzed with Hypothesis: random payloads of every JSON shape, up to the size caps.

Payloads go through raw HTTP (Gradio's queue, the simple call route, malformed bodies) and through
gradio_client, to the tiny-model app served in this process. The property, per request: it gets a
response (a result or a message, never a blank error or a 5xx), the server's log grows by at most
MAX_LOG_BYTES and holds no traceback and nothing the request sent; after all of them the server is up
and a normal comparison still answers. FUZZ_EXAMPLES sets the count (CI: a few dozen; ``make fuzz``:
thousands), FUZZ_REPORT a file for the figures (SECURITY.md quotes ``make fuzz``'s).
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app_server import ECHO, QUESTION, compare

pytest_plugins = ["tests.app_server"]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
MAX_LOG_BYTES = 400  # a refused request's one summary line, with room to spare
CONTENT_CHARS = 16  # a sent text at least this long must not appear in the log
RESPONSE_TIMEOUT_S = 120
CAPS = [4_000, 4_001, 32_001, 1_000_000, 4_000_000]  # the question and context limits, and far above them
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("FUZZ_RANDOM") is None,  # CI: the same payloads every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
big_texts = st.builds(lambda size, char: char * size, st.sampled_from(CAPS), st.characters(min_codepoint=33))
any_json = st.recursive(
    scalars | big_texts,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=24,
)


def nested_body(depth: int, opener: str, key: str) -> bytes:
    """A request whose one field nests ``depth`` arrays or objects (100,000 levels: ~200 KB)."""
    inner = "[" * depth + "]" * depth if opener == "[" else '{"a": ' * depth + "1" + "}" * depth
    return f'{{"model": "{ECHO}", "{key}": {inner}}}'.encode()


deep_bodies = st.builds(
    nested_body, st.sampled_from([33, 999, 1_001, 100_000]), st.sampled_from("[{"), st.sampled_from(["prompt", "data"])
)
JSON_ROUTES = ["/gradio_api/queue/join", "/v1/completions", "/v1/chat/completions"]  # bodies parsed as JSON
settings_fields = [
    st.floats(0, 2),
    st.floats(0.05, 1),
    st.integers(0, 200),
    st.integers(1, 4),
    st.none() | st.integers(0, 2**32 - 1),
]
texts = st.text(max_size=60) | big_texts
# Values each endpoint's page would send (cheap ones: the echo variant, one question of the sample exam).
VALID = {
    "compare": [
        st.sampled_from([[ECHO], ["offline-hub"], [ECHO, "offline-hub"]]),
        texts,
        texts,
        *settings_fields,
        st.booleans(),
    ],
    "chat": [st.sampled_from([ECHO, "offline-hub"]), texts, st.none(), *settings_fields],
    "vote": [st.none() | st.text(max_size=40), st.sampled_from(["Model A", "tie", "all-bad", ECHO, "tiny-lora-0"])],
    "leaderboard": [st.sampled_from(["blind", "unblinded"])],
    "export_votes": [],  # the local app's (a public one has none)
    "evaluate": [st.just([ECHO]), st.just("sample"), st.none(), st.just("loglik"), st.just(1)],
    "stop": [],
    "stop_chat": [],
    "stop_evaluate": [],
    "models": [],
}


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, list[Any]]:
    """An endpoint and its input values: each valid or any JSON, sometimes one too few or one too many."""
    api_name = draw(st.sampled_from(sorted(VALID)))
    values = [draw(st.one_of(valid, any_json)) for valid in VALID[api_name]]
    change = draw(st.sampled_from([0, 0, 0, -1, 1]))
    if change < 0 and values:
        values.pop(draw(st.integers(0, len(values) - 1)))
    elif change > 0:
        values.append(draw(any_json))
    return api_name, values


def shape(value: Any, depth: int = 0) -> str:
    """The JSON shape of a value (types, nesting, sizes by order of magnitude), for counting distinct shapes."""
    if isinstance(value, list):
        return "[" + ",".join(shape(item, depth + 1) for item in value[:6]) + "]" if depth < 3 else "[…]"
    if isinstance(value, dict):
        return "{" + ",".join(shape(item, depth + 1) for item in list(value.values())[:6]) + "}" if depth < 3 else "{…}"
    if isinstance(value, str):
        return f"str{int(math.log10(len(value))) if value else '0'}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return type(value).__name__


def sent_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if len(value) >= CONTENT_CHARS else []
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in sent_texts(item)]


@dataclass
class Tally:
    """The figures of a fuzz run."""

    requests: Counter[str] = field(default_factory=Counter)
    shapes: set[str] = field(default_factory=set)
    max_log_bytes: int = 0
    crashes: list[str] = field(default_factory=list)
    content_in_log: int = 0
    tracebacks: int = 0

    def report(self) -> dict[str, Any]:
        return {
            "requests": sum(self.requests.values()),
            "by_route": dict(self.requests),
            "shapes": len(self.shapes),
            "max_log_bytes_per_request": self.max_log_bytes,
            "crashes": len(self.crashes),
            "content_in_log": self.content_in_log,
            "tracebacks": self.tracebacks,
        }


class Fuzzer:
    """Sends one payload a way, and checks the property on what came back and what the server logged."""

    def __init__(self, url: str, capfd, caplog, tally: Tally):
        self.url, self.capfd, self.caplog, self.tally = url, capfd, caplog, tally
        config = httpx.get(f"{url}/config", timeout=30).json()
        self.fn_index = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}
        self.http = httpx.Client(timeout=RESPONSE_TIMEOUT_S)
        self.logged()

    def logged(self) -> str:
        captured = self.capfd.readouterr()
        text = captured.err + captured.out + "".join(f"{r.name}: {r.getMessage()}\n" for r in self.caplog.records)
        self.tally.tracebacks += text.count("Traceback") + sum(r.exc_info is not None for r in self.caplog.records)
        self.caplog.clear()
        return text

    def check(self, route: str, sent: Any, outcome: str | None) -> None:
        """``outcome`` is None when the request got a response, else what went wrong."""
        self.tally.requests[route] += 1
        self.tally.shapes.add(shape(sent))
        log = self.logged()
        self.tally.max_log_bytes = max(self.tally.max_log_bytes, len(log.encode("utf-8", "replace")))
        self.tally.content_in_log += sum(text[:CONTENT_CHARS] in log for text in sent_texts(sent))
        if outcome is not None:
            self.tally.crashes.append(f"{route} {shape(sent)[:200]}: {outcome[:300]}")
        assert outcome is None, self.tally.crashes[-1]
        assert len(log.encode("utf-8", "replace")) <= MAX_LOG_BYTES, log[:2000]
        assert "Traceback" not in log and not self.tally.content_in_log, log[:2000]

    def queue(self, api_name: str, data: list[Any]) -> None:
        session = uuid.uuid4().hex
        body = {"data": data, "fn_index": self.fn_index[api_name], "session_hash": session, "trigger_id": None}
        join = self.http.post(f"{self.url}/gradio_api/queue/join", content=json.dumps(body), headers=JSON)
        if join.status_code != 200:
            self.check("queue", data, None if join.status_code in (413, 422) else f"join: HTTP {join.status_code}")
            return
        self.check("queue", data, completed(self.http, self.url, session))

    def call(self, api_name: str, data: list[Any]) -> None:
        """Gradio's simple API: POST the data for an event id, then read the event's stream."""
        response = self.http.post(
            f"{self.url}/gradio_api/call/{api_name}", content=json.dumps({"data": data}), headers=JSON
        )
        if response.status_code != 200:
            self.check("call", data, None if response.status_code < 500 else f"call: HTTP {response.status_code}")
            return
        event = response.json()["event_id"]
        with self.http.stream("GET", f"{self.url}/gradio_api/call/{api_name}/{event}") as stream:
            events = [line for line in stream.iter_lines() if line.startswith("event:")]
        ended = any(line.split(":", 1)[1].strip() in ("complete", "error") for line in events)
        self.check("call", data, None if ended else f"no complete or error event: {events[-3:]}")

    def body(self, content: bytes, path: str = "/gradio_api/queue/join") -> None:
        response = self.http.post(f"{self.url}{path}", content=content, headers=JSON)
        outcome = None if response.status_code < 500 else f"{path}: HTTP {response.status_code}"
        self.check("malformed body", content.decode("latin-1"), outcome)

    @cached_property
    def gradio_client(self) -> Client:
        return Client(self.url, verbose=False)

    def client(self, api_name: str, data: list[Any]) -> None:
        try:
            self.gradio_client.predict(*data, api_name=f"/{api_name}")
            outcome = None
        except AppError as error:
            outcome = None if str(error).strip() else "a blank error"
        except httpx.HTTPStatusError as error:  # a refusal with a status: a response, if it says why
            refused = error.response.status_code in (413, 422, 429) and error.response.text.strip()
            outcome = None if refused else f"HTTP {error.response.status_code} without a message"
        except (TypeError, ValueError):  # refused by gradio_client itself (arity, JSON it cannot encode): not sent
            self.logged()
            return
        self.check("gradio_client", data, outcome)


JSON = {"content-type": "application/json"}


def completed(http: httpx.Client, url: str, session: str) -> str | None:
    """None once the event completed with a result or a message, else what happened instead."""
    with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as response:
        for line in response.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                if message.get("success") or str(output.get("error") or "").strip():
                    return None
                return f"completed with a blank error: {str(message)[:300]}"
            if message.get("msg") == "unexpected_error":
                return f"unexpected error: {str(message)[:300]}"
    return "the stream ended without process_completed"


@pytest.fixture(scope="module")
def tally(request) -> Tally:
    figures = Tally()
    yield figures
    report = os.environ.get("FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(figures.report(), indent=2) + "\n")
    print("fuzz figures:", json.dumps(figures.report()))


@pytest.fixture
def fuzzer(tiny_app, capfd, caplog, tally) -> Fuzzer:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="httpx")  # this test's own client, not the server
    return Fuzzer(tiny_app[0], capfd, caplog, tally)


@FUZZ
@given(payload=payloads(), route=st.sampled_from(["queue", "call"]))
def test_raw_http_payloads_get_a_response_and_leave_no_content_in_the_log(fuzzer, payload, route):
    api_name, data = payload
    if route == "queue":
        fuzzer.queue(api_name, data)
    else:
        fuzzer.call(api_name, data)


@FUZZ
@given(content=st.binary(max_size=64) | any_json.map(lambda value: json.dumps(value).encode()))
def test_malformed_bodies_are_refused_with_a_client_error(fuzzer, content):
    fuzzer.body(content)


@FUZZ
@given(content=deep_bodies, path=st.sampled_from(JSON_ROUTES))
def test_deeply_nested_bodies_are_refused_with_a_client_error(fuzzer, content, path):
    fuzzer.body(content, path)


@FUZZ
@given(payload=payloads())
def test_gradio_client_payloads_get_a_response(fuzzer, payload):
    api_name, data = payload
    fuzzer.client(api_name, data)


def test_the_server_still_answers_after_the_fuzzing(tiny_app, tally):
    result = compare(Client(tiny_app[0], verbose=False), [ECHO])
    assert result["answers"][ECHO][0] == QUESTION
    assert not tally.crashes and not tally.content_in_log and not tally.tracebacks, tally.report()
