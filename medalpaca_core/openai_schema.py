"""The OpenAI API's request and response shapes, as the studio reads and writes them.

Evaluation harnesses, chat front ends and scripts speak the OpenAI API; this module turns a
``/v1/completions`` or ``/v1/chat/completions`` body into a studio request (a variant, prompt parts,
generation settings, stop strings) and answers back into OpenAI's JSON, with no web framework
involved so that every rule is testable on its own. Every bad field raises an ``ApiError`` naming it.

- ``/v1/completions``: ``prompt`` is the raw text the model continues (as on vLLM or TGI): the client
  applies the variant's template. The answer is cut at the template's markers, as in the Compare tab.
- ``/v1/chat/completions``: the messages are rendered with the variant's template: the last one is the
  question, earlier user/assistant pairs are the history, and a system message is the context.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .echo import brief
from .generation import MAX_SEED, Answer, FinishReason, GenerationSettings, SettingsError
from .prompts import DEFAULT_INSTRUCTION, PromptParts
from .text import plain_text

MAX_TOKENS = 512  # the page's slider: the API allows no more than the page
MAX_TEMPERATURE = 2.0  # OpenAI's range, and the page's
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 64
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions
DEFAULT_CHAT_MAX_TOKENS = 128  # the page's default answer length (OpenAI's chat has none of its own)
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
class Job:
    """One API request as the studio runs it."""

    model: str
    parts: PromptParts
    raw: bool  # the prompt is the model's input as is (completions), not rendered with the template (chat)
    settings: GenerationSettings
    stop: tuple[str, ...] = ()
    stream: bool = False
    chat: bool = False
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


def settings(body: dict[str, Any], default_max_tokens: int) -> GenerationSettings:
    """max_tokens, temperature, top_p, seed (and vLLM's top_k) as validated generation settings."""
    _check(body.get("n") in (None, 1), "only n=1 is supported", "n")
    limits = {"max_tokens": body.get("max_completion_tokens", body.get("max_tokens"))}
    try:
        return GenerationSettings(
            max_new_tokens=_integer(limits, "max_tokens", default_max_tokens, 1, MAX_TOKENS) or default_max_tokens,
            temperature=_number(body, "temperature", 1.0, 0.0, MAX_TEMPERATURE),
            top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
            top_k=max(_integer(body, "top_k", 0, -1, 1000) or 0, 0),  # vLLM's extension; -1 is off there
            seed=_integer(body, "seed", None, 0, MAX_SEED),
        ).validated(MAX_TOKENS)
    except SettingsError as error:
        raise ApiError(400, str(error)) from error


def _common(body: Any, default_max_tokens: int) -> tuple[str, GenerationSettings, tuple[str, ...], bool]:
    _check(isinstance(body, dict), "the request body must be a JSON object", "body")
    model = _text(body.get("model"), "model")
    stream = body.get("stream", False)
    _check(isinstance(stream, bool), "'stream' must be true or false", "stream")
    return model, settings(body, default_max_tokens), _stop(body), stream


def completion_job(body: Any) -> Job:
    """A ``/v1/completions`` body: ``prompt`` is one string (or a list holding one)."""
    model, parsed, stop, stream = _common(body, DEFAULT_MAX_TOKENS)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        _check(len(prompt) == 1, "'prompt' must be one string (batches of prompts are not supported)", "prompt")
        prompt = prompt[0]
    _check(not body.get("echo") and body.get("logprobs") is None, "echo and logprobs are not supported", "logprobs")
    return Job(model, PromptParts(_text(prompt, "prompt"), instruction=""), True, parsed, stop, stream)


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


def chat_job(body: Any) -> Job:
    model, parsed, stop, stream = _common(body, DEFAULT_CHAT_MAX_TOKENS)
    return Job(model, chat_parts(body.get("messages")), False, parsed, stop, stream, chat=True)


# --- answers --------------------------------------------------------------------------------------------


def finish_reason(answer: Answer) -> str:
    return FINISH_REASONS.get(answer.stats.finish_reason, "stop") if answer.stats else "stop"


def usage(answer: Answer) -> dict[str, int]:
    prompt, new = (answer.stats.prompt_tokens, answer.stats.new_tokens) if answer.stats else (0, 0)
    return {"prompt_tokens": prompt, "completion_tokens": new, "total_tokens": prompt + new}


def _envelope(job: Job, chunk: bool) -> dict[str, Any]:
    kind = ("chat.completion.chunk" if chunk else "chat.completion") if job.chat else "text_completion"
    prefix = "chatcmpl-" if job.chat else "cmpl-"
    return {"id": prefix + job.id, "object": kind, "created": job.created, "model": job.model}


def response(job: Job, text: str, reason: str, counts: dict[str, int]) -> dict[str, Any]:
    """The whole answer as one JSON response."""
    if job.chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
    else:
        choice = {"index": 0, "text": text, "finish_reason": reason, "logprobs": None}
    return {**_envelope(job, False), "choices": [choice], "usage": counts}


def chunk(job: Job, delta: str, reason: str | None = None, first: bool = False) -> dict[str, Any]:
    """One server-sent event of a streamed answer."""
    if job.chat:
        message = {"role": "assistant", "content": delta} if first else {"content": delta} if delta else {}
        choice = {"index": 0, "delta": message, "finish_reason": reason}
    else:
        choice = {"index": 0, "text": delta, "finish_reason": reason, "logprobs": None}
    return {**_envelope(job, True), "choices": [choice]}


def models_list(variant_ids: list[str], created: int = 0) -> dict[str, Any]:
    data = [
        {"id": ident, "object": "model", "created": created, "owned_by": "medalpaca-studio"} for ident in variant_ids
    ]
    return {"object": "list", "data": data}
