"""The OpenAI-compatible API, driven by the official ``openai`` client against the tiny app on loopback.

The same app serves the Compare tab (``/compare``, through gradio_client) and ``/v1``, so a test can ask
both the same question and compare the greedy text.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from medalpaca_core.models.manager import ModelManager
from medalpaca_core.runtime.hosting import SPACE_ENV
from medalpaca_core.serving.openai_api import ENABLE_ENV, KEY_ENV, ApiConfig, api_enabled, create_app
from medalpaca_core.serving.openai_schema import ApiError, chat_parts, completion_job
from medalpaca_core.serving.ratelimit import RateLimit, RateLimiter
from medalpaca_core.text.prompts import PromptParts, render
from tests.app_server import CONTEXT, ECHO, QUESTION, TRIO, EchoStudio, compare, serve, tiny_app_registry

pytest_plugins = ["tests.app_server"]

GREEDY = {"temperature": 0, "max_tokens": 16}


@pytest.fixture(scope="module")
def tiny_studio(tmp_path_factory, tiny_dir, tiny_adapters):
    scratch = tmp_path_factory.mktemp("scratch")
    return EchoStudio(tiny_app_registry(tiny_dir, tiny_adapters, scratch), ModelManager(device="cpu"))


@pytest.fixture(scope="module")
def app_url(tiny_studio, tmp_path_factory, default_model_dir):
    with pytest.MonkeyPatch.context() as env:
        env.delenv(SPACE_ENV, raising=False)
        env.delenv(KEY_ENV, raising=False)
        env.delenv(ENABLE_ENV, raising=False)
        with serve(tiny_studio, tmp_path_factory.mktemp("home"), default_model_dir) as url:
            yield url


@pytest.fixture
def api(app_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0, timeout=120)


# --- the request shapes -----------------------------------------------------------------------------------


def test_chat_messages_become_context_history_and_question():
    parts = chat_parts(
        [
            {"role": "system", "content": "Some context."},
            {"role": "user", "content": "First?"},
            {"role": "assistant", "content": "An answer."},
            {"role": "user", "content": [{"type": "text", "text": "Second?"}]},
        ]
    )
    assert (parts.question, parts.context, parts.history) == ("Second?", "Some context.", (("First?", "An answer."),))
    with pytest.raises(ApiError, match="alternate user and assistant"):
        chat_parts([{"role": "assistant", "content": "Hi"}])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperature": "hot"}, "'temperature' must be a number"),
        ({"temperature": True}, "'temperature' must be a number"),
        ({"temperature": 3}, "'temperature' must be between 0 and 2"),
        ({"max_tokens": 1.5}, "'max_tokens' must be a whole number"),
        ({"max_tokens": 100_000}, "'max_tokens' must be between 1 and 512"),
        ({"top_p": 0}, "top_p must be in"),
        ({"seed": -1}, "'seed' must be between 0"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"stop": 7}, "'stop' must be a string or a list"),
        ({"prompt": [["a"]]}, "list of token ids"),
        ({"prompt": None}, "'prompt' must be a string"),
        ({"n": 2}, "only n=1"),
        ({"stream": "yes"}, "'stream' must be true or false"),
    ],
)
def test_every_bad_field_is_named(change, message):
    with pytest.raises(ApiError, match=message) as raised:
        completion_job({"model": "m", "prompt": "Hello", **change})
    assert raised.value.status == 400


def test_the_api_is_off_on_a_space_unless_asked_for(monkeypatch):
    monkeypatch.delenv(ENABLE_ENV, raising=False)
    monkeypatch.delenv(SPACE_ENV, raising=False)
    assert api_enabled()
    monkeypatch.setenv(SPACE_ENV, "medalpaca/studio")
    assert not api_enabled()
    monkeypatch.setenv(ENABLE_ENV, "1")
    assert api_enabled()
    monkeypatch.delenv(SPACE_ENV)
    monkeypatch.setenv(ENABLE_ENV, "0")
    assert not api_enabled()


# --- over HTTP, with the openai client ----------------------------------------------------------------------


def test_models_lists_the_variants(api, tiny_studio):
    assert [model.id for model in api.models.list()] == [variant.id for variant in tiny_studio.variants()]


def test_greedy_text_equals_the_compare_tabs(api, app_url):
    from gradio_client import Client

    compared = compare(Client(app_url, verbose=False), [TRIO[0]], max_new_tokens=16)
    expected = compared["answers"][TRIO[0]][0]
    assert expected.strip()
    messages = [{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}]
    chat = api.chat.completions.create(model=TRIO[0], messages=messages, **GREEDY)
    assert chat.choices[0].message.content == expected
    assert chat.usage.completion_tokens > 0 and chat.choices[0].finish_reason in ("stop", "length")
    prompt = render("medalpaca", PromptParts(QUESTION, CONTEXT))  # the client applies the template
    completion = api.completions.create(model=TRIO[0], prompt=prompt, **GREEDY)
    assert completion.choices[0].text == expected
    streamed = api.chat.completions.create(model=TRIO[0], messages=messages, stream=True, **GREEDY)
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    pieces = list(api.completions.create(model=TRIO[0], prompt=prompt, stream=True, **GREEDY))
    assert "".join(piece.choices[0].text for piece in pieces) == expected


def test_a_stop_string_ends_the_answer(api):
    completion = api.completions.create(model=ECHO, prompt="alpha beta gamma delta", stop=[" gamma"], **GREEDY)
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == ("alpha beta", "stop")


def test_an_unknown_model_is_404_listing_the_valid_ids(api):
    with pytest.raises(openai.NotFoundError) as raised:
        api.completions.create(model="gpt-5", prompt="Hello", **GREEDY)
    assert "Valid models: " + ", ".join(["tiny-lora-0", "tiny-lora-1"]) in str(raised.value)


def test_bad_json_and_bad_settings_are_400_with_a_message(api, app_url):
    reply = httpx.post(f"{app_url}/v1/completions", content=b"{not json", timeout=30)
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="'temperature' must be between 0 and 2"):
        api.completions.create(model=ECHO, prompt="Hello", temperature=7)
    with pytest.raises(openai.BadRequestError, match="question is 5,000 characters; the limit is 4,000") as raised:
        api.completions.create(model=ECHO, prompt="x" * 5000, **GREEDY)
    assert raised.value.param == "prompt"
    with pytest.raises(openai.BadRequestError, match="question is 5,000 characters; the limit is 4,000") as raised:
        api.chat.completions.create(model=ECHO, messages=[{"role": "user", "content": "x" * 5000}], **GREEDY)
    assert raised.value.param == "messages"


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
@pytest.mark.parametrize("depth", [100_000, 33])
def test_a_body_nested_too_deep_is_a_400_naming_the_body_and_logs_nothing(app_url, path, depth, capfd, caplog):
    """100,000 levels (~200 KB) overflow the JSON parser's recursion; 33 parse, but no request of the API nests so
    deep: both are refused alike, with no traceback and (almost) nothing in the log."""
    capfd.readouterr()
    body = b'{"model": "echo", "prompt": ' + b"[" * depth + b"]" * depth + b"}"
    reply = httpx.post(f"{app_url}{path}", content=body, timeout=60)
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["param"] == "body", error
    assert error["message"] == "The request body nests JSON more than 32 levels deep"
    logged = capfd.readouterr().err + caplog.text
    assert len(logged.encode()) < 400 and "Traceback" not in logged, logged[-2000:]


def test_a_variant_this_machine_cannot_run_is_refused_with_its_reason(api):
    with pytest.raises(openai.BadRequestError, match=r"offline-hub \(medalpaca/medalpaca-7b is not downloaded"):
        api.completions.create(model="offline-hub", prompt="Hello", **GREEDY)


def test_a_variant_that_fails_to_load_is_an_error_with_its_reason(api):
    with pytest.raises(openai.APIStatusError, match="broken cannot answer") as raised:
        api.completions.create(model="broken", prompt="Hello", **GREEDY)
    assert raised.value.status_code == 503


def test_over_the_rate_limit_is_429_and_a_key_is_required_when_set(tiny_studio, tmp_path, default_model_dir):
    with pytest.MonkeyPatch.context() as env:
        env.delenv(SPACE_ENV, raising=False)
        env.setenv(KEY_ENV, "s3cret")
        with serve(tiny_studio, tmp_path / "home", default_model_dir, limiter=RateLimiter(RateLimit(2, 60))) as url:
            keyed = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0, timeout=60)
            with pytest.raises(openai.AuthenticationError, match="Missing or wrong API key"):
                keyed.with_options(api_key="wrong").models.list()
            for _ in range(2):
                keyed.completions.create(model=ECHO, prompt="Hello", **GREEDY)
            with pytest.raises(openai.RateLimitError, match="Too many requests: at most 2 per 60 s"):
                keyed.completions.create(model=ECHO, prompt="Hello", **GREEDY)


def test_on_a_space_the_api_is_off_by_default(tiny_studio, tmp_path, default_model_dir, monkeypatch):
    monkeypatch.setenv(SPACE_ENV, "medalpaca/studio")
    monkeypatch.setenv("MEDALPACA_PERSISTENT_ROOT", str(tmp_path / "no-data"))
    monkeypatch.delenv(ENABLE_ENV, raising=False)
    with serve(tiny_studio, tmp_path / "home", default_model_dir) as url:
        assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 404


def test_the_api_runs_without_the_web_page(tiny_studio):
    with TestClient(create_app(tiny_studio, RateLimiter(None), ApiConfig())) as client:
        assert ECHO in [model["id"] for model in client.get("/v1/models").json()["data"]]
        reply = client.post("/v1/completions", json={"model": ECHO, "prompt": "Hi there", **GREEDY})
        assert reply.json()["choices"][0]["text"] == "Hi there"
        assert client.get("/").status_code == 404  # no web page
