"""Remote variants: a column answered by any OpenAI-compatible server (vLLM, TGI, llama.cpp, Ollama, a studio).

MedAlpaca 13b and 30b, and many visitors, need GPUs and a serving engine; the studio puts such a server's
answer in a column beside the local ones instead of reimplementing one. A registry entry with
``endpoint`` (the server's ``/v1`` URL), ``model`` (its model name, e.g. a vLLM LoRA module) and
optionally ``api_key_env`` (the environment variable holding its key) is such a variant.

The prompt is rendered here, with the variant's template, and sent as a raw ``/v1/completions`` prompt
(``/v1/chat/completions`` messages for the ``chat`` template), so a base model served by vLLM gets
exactly the prompt a local copy would. The answer streams back (server-sent events) and is cut at the
template's markers like a local one; time to first token and tokens/s come from the stream. A server
that cannot be reached, refuses the key, errs or stops sending for ``timeout_s`` ends the column with
an error; the other columns go on.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from ..generation.answers import Answer, FinishReason, Stats, Status
from ..generation.settings import GenerationSettings
from ..text.prompts import STOP_MARKERS, PromptParts, cut_response, render
from .registry import Variant

CONNECT_TIMEOUT_S = 10.0
MAX_ERROR_CHARS = 300
# An OpenAI-compatible server's finish reasons, as ours.
FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "eos": FinishReason.EOS}


class RemoteError(RuntimeError):
    """What went wrong with a remote variant, said for its column."""


def api_key(variant: Variant) -> str | None:
    return os.environ.get(variant.api_key_env) if variant.api_key_env else None


def request_body(variant: Variant, parts: PromptParts, raw: bool, settings: GenerationSettings) -> tuple[str, dict]:
    """(path, JSON body) of the request that asks the server what a local copy would be asked."""
    body: dict[str, Any] = {
        "model": variant.model or variant.base,
        "max_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "stop": list(STOP_MARKERS[variant.template][:4]),  # OpenAI allows 4
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if settings.seed is not None:
        body["seed"] = settings.seed
    if settings.do_sample and settings.top_k:
        body["top_k"] = settings.top_k  # vLLM's and llama.cpp's extension; greedy requests leave it out
    if variant.template == "chat" and not raw:
        messages = [{"role": "system", "content": parts.context}] if parts.context.strip() else []
        for user, assistant in parts.history:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return "/chat/completions", {**body, "messages": [*messages, {"role": "user", "content": parts.question}]}
    prompt = parts.question if raw else render(variant.template, parts)
    return "/completions", {**body, "prompt": prompt}


def _delta(event: dict[str, Any]) -> tuple[str, str | None]:
    """(new text, finish reason) of one streamed event, for completions and chat alike."""
    if "error" in event:
        error = event["error"]
        raise RemoteError(str(error.get("message", error) if isinstance(error, dict) else error)[:MAX_ERROR_CHARS])
    choices = event.get("choices") or []
    if not choices:
        return "", None
    choice = choices[0]
    text = choice.get("text")
    if text is None:
        text = (choice.get("delta") or {}).get("content") or ""
    return text, choice.get("finish_reason")


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            yield json.loads(data)
        except ValueError:
            raise RemoteError(f"the server sent something that is not JSON: {data[:80]!r}") from None


def _refusal(response: httpx.Response) -> RemoteError:
    response.read()
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    what = "refused the API key" if response.status_code in (401, 403) else "answered"
    return RemoteError(f"the server {what} (HTTP {response.status_code}): {str(message)[:MAX_ERROR_CHARS]}")


def stream_remote(
    variant: Variant, parts: PromptParts, raw: bool, settings: GenerationSettings, cancel: threading.Event
) -> Iterator[Answer]:
    """The remote variant's answer as it grows; errors end it as an error answer, never as an exception."""
    started = time.perf_counter()
    path, body = request_body(variant, parts, raw, settings)
    headers = {"Authorization": f"Bearer {api_key(variant)}"} if api_key(variant) else {}
    timeout = httpx.Timeout(variant.timeout_s, connect=min(CONNECT_TIMEOUT_S, variant.timeout_s))
    text, pieces, first, usage, finish = "", 0, None, {}, None
    try:
        with httpx.Client(timeout=timeout) as client:
            url = variant.endpoint.rstrip("/") + path
            with client.stream("POST", url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    raise _refusal(response)
                for event in _events(response):
                    piece, finish = _delta(event)
                    usage = event.get("usage") or usage
                    if piece:
                        first = first or time.perf_counter()
                        text, pieces = text + piece, pieces + 1
                    answer_text, hit_marker = cut_response(variant.template, text)
                    if finish or hit_marker or cancel.is_set():
                        cancelled = cancel.is_set() and not finish
                        finish = FinishReason.CANCELLED if cancelled else finish or FinishReason.STOP
                        break
                    stats = _stats(variant, started, first, pieces, usage, "")
                    yield Answer(variant.id, answer_text, Status.GENERATING, None, stats)
        if finish is None:
            raise RemoteError("the stream ended before the answer did")
        answer_text, _ = cut_response(variant.template, text)
        yield Answer(variant.id, answer_text, Status.DONE, None, _stats(variant, started, first, pieces, usage, finish))
    except RemoteError as error:
        yield Answer(variant.id, text, Status.ERROR, f"{variant.id} ({variant.endpoint}): {error}")
    except httpx.TimeoutException:
        message = f"no answer within {variant.timeout_s:g} s"
        yield Answer(variant.id, text, Status.ERROR, f"{variant.id} ({variant.endpoint}): {message}")
    except httpx.HTTPError as error:
        what = f"the connection broke after {pieces} pieces of text" if first else f"cannot reach {variant.endpoint}"
        yield Answer(variant.id, text, Status.ERROR, f"{variant.id}: {what}: {str(error)[:MAX_ERROR_CHARS]}")


def _stats(variant: Variant, started: float, first: float | None, pieces: int, usage: dict, finish: str) -> Stats:
    """Timing from the stream; token counts from the server's usage report when it sends one."""
    return Stats(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        new_tokens=int(usage.get("completion_tokens") or pieces),
        ttft_s=None if first is None else first - started,
        wall_s=time.perf_counter() - started,
        memory_bytes=0,
        quantization="remote",
        truncated=False,
        finish_reason=FINISH.get(finish, finish),
    )
