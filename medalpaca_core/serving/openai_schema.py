"""The OpenAI API's request and response shapes, as the studio reads and writes them.

Evaluation harnesses, chat front ends and scripts speak the OpenAI API; this module turns a
``/v1/completions`` or ``/v1/chat/completions`` body into a studio request (a variant, prompt parts,
generation settings, stop strings) and answers back into OpenAI's JSON, with no web framework
involved so that every rule is testable on its own. Every bad field raises an ``ApiError`` naming it.

- ``/v1/completions``: ``prompt`` is the raw text the model continues (as on vLLM or TGI): the client
  applies the variant's template. The answer is cut at the template's markers, as in the Compare tab.
  OpenAI's legacy fields (``echo``, ``logprobs: k``, a prompt of token ids, a batch of prompts) make a
  ``Scoring`` request: every token's log-probability, what lm-evaluation-harness's loglikelihood tasks ask.
- ``/v1/chat/completions``: the messages are rendered with the variant's template: the last one is the
  question, earlier user/assistant pairs are the history, and a system message is the context;
  ``logprobs``/``top_logprobs`` score the answer's tokens.

A field the studio does not honour (``best_of``, ``suffix``, penalties, tools, ...) is refused when it asks
for anything but the default: a client that asked for something must not silently go without it.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from ..generation.answers import Answer, FinishReason
from ..generation.settings import KNOB, KNOBS, GenerationSettings, Knob, SettingsError
from ..text.prompts import DEFAULT_INSTRUCTION, PromptParts
from ..text.visitor import brief, plain_text

MAX_TOKENS = int(KNOB["max_new_tokens"].high)  # the page's slider: the API allows no more than the page
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 64
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions
DEFAULT_CHAT_MAX_TOKENS = 128  # the page's default answer length (OpenAI's chat has none of its own)
MAX_LOGPROBS = 20  # alternatives per token (vLLM's default cap, OpenAI's chat cap)
MAX_PROMPTS = 32  # prompts in one completions request
UNSUPPORTED = {  # fields the studio cannot honour -> the values that ask for nothing
    "best_of": (1,),
    "suffix": ("",),
    "logit_bias": ({},),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none",),
    "function_call": ("none",),
    "response_format": ({"type": "text"},),
}
FINISH_REASONS = {  # ours as OpenAI says them
    FinishReason.EOS: "stop",
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.CANCELLED: "stop",
}


class ApiError(Exception):
    """A request the API refuses: HTTP ``status`` with an OpenAI-style error body."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.status, self.kind, self.param, self.retry_after_s = status, kind, param, retry_after_s

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": None}}


@dataclass(frozen=True)
class Scoring:
    """A completions request in OpenAI's legacy terms: ``prompts`` (each a text or token ids), the prompt's
    tokens returned with the answer (``echo``), ``logprobs`` alternatives per token (None: no log-probabilities)
    and ``new_tokens`` (0 with ``echo``: the prompt scored, nothing generated)."""

    prompts: tuple[str | tuple[int, ...], ...]
    echo: bool
    logprobs: int | None
    new_tokens: int


@dataclass(frozen=True)
class Job:
    """One API request as the studio runs it (``scoring``: a legacy completions request; ``logprobs``: the
    alternatives a chat answer's tokens come with, None for none)."""

    model: str
    parts: PromptParts
    raw: bool  # the prompt is the model's input as is (completions), not rendered with the template (chat)
    settings: GenerationSettings
    stop: tuple[str, ...] = ()
    stream: bool = False
    chat: bool = False
    scoring: Scoring | None = None
    logprobs: int | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])


def _check(ok: bool, message: str, param: str) -> None:
    if not ok:
        raise ApiError(400, message, param=param)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    is_number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    _check(is_number, f"'{name}' must be a number", name)
    _check(low <= value <= high, f"'{name}' must be between {low:g} and {high:g}, not {brief(value)}", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    whole = isinstance(value, int) and not isinstance(value, bool)
    _check(whole, f"'{name}' must be a whole number", name)
    _check(low <= value <= high, f"'{name}' must be between {low} and {high}, not {brief(value)}", name)
    return int(value)


def _text(value: Any, name: str) -> str:
    _check(isinstance(value, str), f"'{name}' must be a string", name)
    return plain_text(value)


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    _check(isinstance(stops, list), "'stop' must be a string or a list of strings", "stop")
    _check(len(stops) <= MAX_STOP_STRINGS, f"'stop' holds at most {MAX_STOP_STRINGS} strings", "stop")
    for stop in stops:
        _check(
            isinstance(stop, str) and 0 < len(stop) <= MAX_STOP_CHARS, "each stop string: 1 to 64 characters", "stop"
        )
    return tuple(stops)


def _unsupported(body: dict[str, Any]) -> None:
    _check(body.get("n") in (None, 1), "only n=1 is supported", "n")
    for name, neutral in UNSUPPORTED.items():
        value = body.get(name)
        _check(value is None or value in neutral, f"'{name}' is not supported (only {neutral[0]!r})", name)


def _knob(body: dict[str, Any], knob: Knob, default: float | None, low: float) -> float | None:
    """The request's value of ``knob`` (by its API name), checked against its API range."""
    read = _number if knob.kind is float else _integer
    return read(body, knob.api_field, default, low, knob.api_bounds[1])


def settings(body: dict[str, Any], default_max_tokens: int, fewest_tokens: int = 1) -> GenerationSettings:
    """The settings of ``KNOBS`` by their API names (max_tokens, temperature, top_p, seed, vLLM's top_k) as
    validated generation settings.

    ``fewest_tokens`` 0 (an echo) accepts ``max_tokens: 0``: the settings then hold 1, which nothing generates.
    """
    sent = {**body, "max_tokens": body.get("max_completion_tokens", body.get("max_tokens"))}
    defaults = {"max_new_tokens": default_max_tokens}  # per endpoint: OpenAI's completions and chat differ
    lows = {"max_new_tokens": fewest_tokens}
    values = {
        knob.name: _knob(sent, knob, defaults.get(knob.name, knob.api_default), lows.get(knob.name, knob.api_bounds[0]))
        for knob in KNOBS
    }
    values["max_new_tokens"] = values["max_new_tokens"] or 1
    values["top_k"] = max(values["top_k"] or 0, 0)  # vLLM's -1 is off, as 0 is here
    try:
        return GenerationSettings(**values).validated(MAX_TOKENS)
    except SettingsError as error:
        raise ApiError(400, str(error)) from error


def _common(
    body: Any, default_max_tokens: int, fewest_tokens: int = 1
) -> tuple[str, GenerationSettings, tuple[str, ...], bool]:
    _check(isinstance(body, dict), "the request body must be a JSON object", "body")
    _unsupported(body)
    model = _text(body.get("model"), "model")
    stream = body.get("stream", False)
    _check(isinstance(stream, bool), "'stream' must be true or false", "stream")
    return model, settings(body, default_max_tokens, fewest_tokens), _stop(body), stream


def _token_ids(value: Any, where: str) -> tuple[int, ...]:
    whole = all(isinstance(token, int) and not isinstance(token, bool) and token >= 0 for token in value)
    _check(bool(value) and whole, f"'{where}' must be a non-empty list of token ids (whole numbers >= 0)", "prompt")
    return tuple(value)


def prompts(value: Any) -> tuple[str | tuple[int, ...], ...]:
    """OpenAI's four prompt shapes: a string, token ids, a list of strings, a list of token-id lists."""
    if isinstance(value, str):
        return (plain_text(value),)
    _check(isinstance(value, list), "'prompt' must be a string, token ids, or a list of either", "prompt")
    _check(bool(value), "'prompt' must not be an empty list", "prompt")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return (_token_ids(value, "prompt"),)
    _check(len(value) <= MAX_PROMPTS, f"'prompt' holds at most {MAX_PROMPTS} prompts, not {len(value)}", "prompt")
    return tuple(
        plain_text(item) if isinstance(item, str) else _token_ids(_listed(item, n), f"prompt[{n}]")
        for n, item in enumerate(value)
    )


def _listed(item: Any, index: int) -> list[Any]:
    _check(isinstance(item, list), f"'prompt[{index}]' must be a string or a list of token ids", "prompt")
    return item


def _logprobs(body: dict[str, Any], name: str) -> int | None:
    return _integer(body, name, None, 0, MAX_LOGPROBS)


def scoring(body: dict[str, Any], stream: bool, parsed: GenerationSettings) -> Scoring | None:
    """The legacy request, or None for one text prompt answered as text (the Compare tab's path)."""
    echo = body.get("echo", False)
    _check(isinstance(echo, bool), "'echo' must be true or false", "echo")
    logprobs = _logprobs(body, "logprobs")
    texts = prompts(body.get("prompt"))
    if not echo and logprobs is None and len(texts) == 1 and isinstance(texts[0], str):
        return None
    for name, asked in (("echo", echo), ("logprobs", logprobs is not None), ("prompt", True)):
        _check(not (stream and asked), f"'stream' cannot be combined with '{name}' here: ask without streaming", name)
    nothing = body.get("max_completion_tokens", body.get("max_tokens")) == 0  # an echo: the prompt scored alone
    return Scoring(texts, echo, logprobs, 0 if nothing else parsed.max_new_tokens)


def completion_job(body: Any) -> Job:
    """A ``/v1/completions`` body: one text prompt answered as text, or a legacy ``Scoring`` request."""
    echo = isinstance(body, dict) and body.get("echo") is True
    model, parsed, stop, stream = _common(body, DEFAULT_MAX_TOKENS, fewest_tokens=0 if echo else 1)
    legacy = scoring(body, stream, parsed)
    first = legacy.prompts[0] if legacy else prompts(body.get("prompt"))[0]
    parts = PromptParts(first if isinstance(first, str) else "", instruction="")
    return Job(model, parts, True, parsed, stop, stream, scoring=legacy)


def _content(message: dict[str, Any], index: int) -> str:
    """A message's text: a string, or OpenAI's list of text parts."""
    content = message.get("content")
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        _check(len(texts) == len(content), f"messages[{index}]: only text content is supported", "messages")
        content = "".join(texts)
    return _text(content, f"messages[{index}].content")


def chat_parts(messages: Any) -> PromptParts:
    """System messages are the context, the last user message the question, earlier pairs the history."""
    _check(isinstance(messages, list) and messages, "'messages' must be a non-empty list", "messages")
    context, turns = [], []
    for index, message in enumerate(messages):
        _check(isinstance(message, dict), f"messages[{index}] must be an object", "messages")
        role = message.get("role")
        _check(role in ("system", "developer", "user", "assistant"), f"messages[{index}]: unknown role", "messages")
        text = _content(message, index)
        if role in ("system", "developer"):
            context.append(text)
        else:
            turns.append((role, text))
    roles = [role for role, _ in turns]
    expected = ["user", "assistant"] * (len(turns) // 2) + ["user"]
    _check(roles == expected, "messages must alternate user and assistant and end with a user message", "messages")
    history = tuple((turns[n][1], turns[n + 1][1]) for n in range(0, len(turns) - 1, 2))
    return PromptParts(turns[-1][1], "\n\n".join(context), DEFAULT_INSTRUCTION, history=history)


def chat_alternatives(body: dict[str, Any], stream: bool) -> int | None:
    """``logprobs: true`` with ``top_logprobs`` alternatives (0 unless given); None when not asked."""
    asked = body.get("logprobs", False)
    _check(isinstance(asked, bool), "'logprobs' must be true or false", "logprobs")
    top = _logprobs(body, "top_logprobs")
    _check(asked or top is None, "'top_logprobs' needs 'logprobs': true", "top_logprobs")
    refused = "'logprobs' cannot be combined with 'stream' here: ask without streaming"
    _check(not (asked and stream), refused, "logprobs")
    return (top or 0) if asked else None


def chat_job(body: Any) -> Job:
    model, parsed, stop, stream = _common(body, DEFAULT_CHAT_MAX_TOKENS)
    logprobs = chat_alternatives(body, stream)
    return Job(model, chat_parts(body.get("messages")), False, parsed, stop, stream, chat=True, logprobs=logprobs)


# --- answers --------------------------------------------------------------------------------------------


def finish_reason(answer: Answer) -> str:
    return FINISH_REASONS.get(answer.stats.finish_reason, "stop") if answer.stats else "stop"


def usage(answer: Answer) -> dict[str, int]:
    prompt, new = (answer.stats.prompt_tokens, answer.stats.new_tokens) if answer.stats else (0, 0)
    return token_counts(prompt, new)


def token_counts(prompt: int, new: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": new, "total_tokens": prompt + new}


def _envelope(job: Job, chunk: bool) -> dict[str, Any]:
    kind = ("chat.completion.chunk" if chunk else "chat.completion") if job.chat else "text_completion"
    prefix = "chatcmpl-" if job.chat else "cmpl-"
    return {"id": prefix + job.id, "object": kind, "created": job.created, "model": job.model}


def completion_choice(index: int, text: str, reason: str, logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"index": index, "text": text, "finish_reason": reason, "logprobs": logprobs}


def response(
    job: Job, text: str, reason: str, counts: dict[str, int], logprobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole answer as one JSON response (``logprobs``: a chat answer's, from ``chat_logprobs``)."""
    if job.chat:
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": reason, "logprobs": logprobs}
    else:
        choice = completion_choice(0, text, reason)
    return {**_envelope(job, False), "choices": [choice], "usage": counts}


def scored_response(job: Job, choices: list[dict[str, Any]], counts: dict[str, int]) -> dict[str, Any]:
    """A legacy completions answer: one choice per prompt, in the prompts' order."""
    return {**_envelope(job, False), "choices": choices, "usage": counts}


# A token as the API shows it: its text, its log-probability (None for a prompt's first token) and the most
# probable tokens at its position, best first.
Piece = tuple[str, float | None, tuple[tuple[str, float], ...]]


def legacy_logprobs(pieces: list[Piece]) -> dict[str, Any]:
    """OpenAI's legacy ``logprobs`` object; each position's alternatives include its own token, as vLLM's."""
    offsets = list(accumulate((len(text) for text, _, _ in pieces), initial=0))[:-1]
    return {
        "tokens": [text for text, _, _ in pieces],
        "token_logprobs": [logprob for _, logprob, _ in pieces],
        "top_logprobs": [None if logprob is None else {**dict(top), text: logprob} for text, logprob, top in pieces],
        "text_offset": offsets,
    }


def _token(text: str, logprob: float | None) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def chat_logprobs(pieces: list[Piece]) -> dict[str, Any]:
    """A chat choice's ``logprobs``: every answer token with its alternatives."""
    content = [
        {**_token(text, logprob), "top_logprobs": [_token(other, value) for other, value in top]}
        for text, logprob, top in pieces
    ]
    return {"content": content, "refusal": None}


def chunk(job: Job, delta: str, reason: str | None = None, first: bool = False) -> dict[str, Any]:
    """One server-sent event of a streamed answer."""
    if job.chat:
        message = {"role": "assistant", "content": delta} if first else {"content": delta} if delta else {}
        choice = {"index": 0, "delta": message, "finish_reason": reason}
    else:
        choice = completion_choice(0, delta, reason)
    return {**_envelope(job, True), "choices": [choice]}


def models_list(variant_ids: list[str], created: int = 0) -> dict[str, Any]:
    data = [
        {"id": ident, "object": "model", "created": created, "owned_by": "medalpaca-studio"} for ident in variant_ids
    ]
    return {"object": "list", "data": data}
