"""OpenAI-compatible endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``.

They let evaluation harnesses, chat front ends and scripts (and other studios, as a remote variant) use
the studio's variants, including the 8-bit LoRA ones no serving engine runs. Every request goes through
``Studio.stream_requests``, the path the Compare tab takes, so the same prompt and settings give the same
greedy text. The web app mounts the routes beside Gradio's (``app.py``); ``python -m medalpaca_core serve``
runs them alone.

The same guards as the page: the per-client rate limit (429), the input limits (400), a bounded number of
requests answered at once (as many as one base's running batch holds: they join it) and waiting (429 when
full), and an optional bearer token (``MEDALPACA_API_KEY``).
On a Space the API is off unless ``MEDALPACA_OPENAI_API=1``: a public Space should not become a free
API by accident.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..engine import Request as StudioRequest
from ..engine import Studio
from ..generation.answers import Answer, FinishReason, Status
from ..generation.scheduler import SchedulerConfig
from ..generation.settings import SettingsError
from ..models.registry import UnavailableVariantError, UnknownVariantError
from ..runtime.hosting import on_space
from ..text.prompts import STOP_MARKERS, PromptError
from ..text.visitor import brief
from .clients import client_key
from .openai_schema import ApiError, Job, chat_job, chunk, completion_job, finish_reason, models_list, response, usage
from .openai_scoring import answer_logprobs, legacy_completion
from .ratelimit import RateLimited, RateLimiter

ENABLE_ENV = "MEDALPACA_OPENAI_API"
KEY_ENV = "MEDALPACA_API_KEY"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
ROWS_PER_BATCH = SchedulerConfig().max_rows
MAX_BODY_DEPTH = 32  # a chat request nests 4 levels (messages, a message, its content parts): far below this


def api_enabled() -> bool:
    """MEDALPACA_OPENAI_API=1 or 0 decides; unset, the API is on except on a Space."""
    setting = os.environ.get(ENABLE_ENV, "").strip().lower()
    if setting:
        return setting in ("1", "true", "yes", "on")
    return not on_space()


@dataclass(frozen=True)
class ApiConfig:
    """``api_key``: the bearer token every request must carry (None: no token); the rest bounds the work."""

    api_key: str | None = None
    max_running: int = ROWS_PER_BATCH  # requests for one base share its running batch: as many as it holds
    max_waiting: int = 32

    @classmethod
    def from_env(cls, max_running: int = ROWS_PER_BATCH, max_waiting: int = 32) -> ApiConfig:
        return cls(os.environ.get(KEY_ENV) or None, max_running, max_waiting)


class Gate:
    """At most ``running`` generations at once and ``waiting`` more in line; beyond that, 429 at once."""

    def __init__(self, running: int, waiting: int):
        self._slots = asyncio.Semaphore(running)
        self._waiting, self._max_waiting = 0, waiting

    async def __aenter__(self) -> None:
        if self._slots.locked() and self._waiting >= self._max_waiting:
            raise ApiError(429, "The server is busy: too many requests are waiting. Try again shortly.", "rate_limit")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()


def error_response(error: ApiError) -> JSONResponse:
    headers = {"Retry-After": str(int(error.retry_after_s) + 1)} if error.retry_after_s is not None else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def holdback(template: str, stops: tuple[str, ...]) -> int:
    """Characters kept back while streaming: a template marker or stop string may still be forming there."""
    return max(len(marker) for marker in (*STOP_MARKERS[template], *stops))


def visible(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """The answer up to the first stop string, and whether one was found."""
    cuts = [position for position in (text.find(stop) for stop in stops) if position >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class OpenAIApi:
    """The routes, bound to one studio, rate limiter and configuration."""

    def __init__(self, studio: Studio, limiter: RateLimiter, config: ApiConfig | None = None):
        self.studio, self.limiter = studio, limiter
        self.config = config or ApiConfig.from_env()
        self.gate = Gate(self.config.max_running, self.config.max_waiting)

    def routes(self) -> list[Any]:
        router = APIRouter()
        router.add_api_route("/v1/models", self.models, methods=["GET"])
        router.add_api_route("/v1/completions", self.completions, methods=["POST"])
        router.add_api_route("/v1/chat/completions", self.chat_completions, methods=["POST"])
        return router.routes

    def authorize(self, request: Request) -> None:
        if self.config.api_key is None:
            return
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.config.api_key.encode()):
            raise ApiError(401, "Missing or wrong API key: send 'Authorization: Bearer <key>'.", "authentication_error")

    async def models(self, request: Request) -> Response:
        try:
            self.authorize(request)
        except ApiError as error:
            return error_response(error)
        return JSONResponse(models_list([variant.id for variant in self.studio.variants()]))

    async def completions(self, request: Request) -> Response:
        return await self.answer(request, completion_job)

    async def chat_completions(self, request: Request) -> Response:
        return await self.answer(request, chat_job)

    async def answer(self, request: Request, parse: Any) -> Response:
        try:
            self.authorize(request)
            job = parse(await read_json(request))
            variant = self.variant(job)
            self.admit(request)
            if job.scoring is not None:
                return JSONResponse(await self.in_worker(job, legacy_completion, variant, job))
            stream = self.start(job, threading.Event())
        except ApiError as error:
            return error_response(error)
        events = self.events(job, variant.template, stream)
        if job.stream:
            return StreamingResponse(sse(job, events), media_type="text/event-stream", headers=SSE_HEADERS)
        try:
            body = await whole(job, events)
            if job.logprobs is not None:
                text = body["choices"][0]["message"]["content"]
                body["choices"][0]["logprobs"] = await self.in_worker(job, answer_logprobs, variant, job, text)
            return JSONResponse(body)
        except ApiError as error:
            return error_response(error)

    async def in_worker(self, job: Job, work: Any, *args: Any) -> Any:
        """``work(studio, *args)`` in a worker thread, through the gate; a model that fails is a 503."""
        async with self.gate:
            try:
                return await anyio.to_thread.run_sync(work, self.studio, *args)
            except ApiError:
                raise
            except Exception as error:  # a variant that cannot load or run: its reason, as the text path says it
                raise ApiError(503, f"{job.model} cannot answer: {error}", "server_error") from error

    def variant(self, job: Job) -> Any:
        """The variant ``job`` names: 404 when there is none, 400 when this machine cannot run it (before any work,
        on every path: streamed, whole, scored)."""
        try:
            self.studio.require_available([job.model])
            return self.studio.variant(job.model)
        except UnknownVariantError:
            ids = ", ".join(variant.id for variant in self.studio.variants())
            message = f"The model {brief(job.model)} does not exist. Valid models: {ids}"
            raise ApiError(404, message, "not_found_error", "model") from None
        except UnavailableVariantError as error:
            raise ApiError(400, str(error), param="model") from error

    def admit(self, request: Request) -> None:
        peer = request.client.host if request.client else None
        try:
            self.limiter.admit(client_key(peer, request.headers.getlist("x-forwarded-for")))
        except RateLimited as error:
            raise ApiError(429, str(error), "rate_limit", retry_after_s=error.retry_after_s) from error

    def start(self, job: Job, cancel: threading.Event) -> tuple[Iterator[dict[str, Answer]], threading.Event]:
        """Validate and start the studio's stream (bad input raises here, before any response is sent)."""
        try:
            request = StudioRequest(job.model, job.parts, raw=job.raw)
            return self.studio.stream_requests([request], job.settings, cancel), cancel
        except PromptError as error:  # the question or context: a completion's prompt, a chat's messages
            raise ApiError(400, str(error), param="prompt" if job.raw else "messages") from error
        except SettingsError as error:
            raise ApiError(400, str(error)) from error

    async def events(
        self, job: Job, template: str, started: tuple[Iterator[dict[str, Answer]], threading.Event]
    ) -> AsyncIterator[tuple[str, Answer]]:
        """(new text, answer) as the answer grows; stops the generation at a stop string or when the client
        leaves (this generator is closed), and raises ApiError for an answer that failed."""
        snapshots, cancel = started
        sent, hold = "", holdback(template, job.stop)
        async with self.gate:
            try:
                while (snapshot := await anyio.to_thread.run_sync(next, snapshots, None)) is not None:
                    answer = snapshot[job.model]
                    if answer.status == Status.ERROR:
                        raise ApiError(503, f"{job.model} cannot answer: {answer.error}", "server_error")
                    text, stopped = visible(answer.text, job.stop)
                    finished = answer.finished or stopped
                    ready = text if finished else text[: max(len(text) - hold, len(sent))]
                    if ready.startswith(sent) and (len(ready) > len(sent) or finished):
                        yield ready[len(sent) :], answer if not stopped else stopped_answer(answer)
                        sent = ready
                    if finished:
                        return
            finally:
                cancel.set()
                await anyio.to_thread.run_sync(close, snapshots)


def stopped_answer(answer: Answer) -> Answer:
    """The answer as ended by a stop string (reported as 'stop', whatever the generation does next)."""
    stats = replace(answer.stats, finish_reason=FinishReason.STOP) if answer.stats else None
    return replace(answer, status=Status.DONE, stats=stats)


def close(iterator: Iterator[Any]) -> None:
    getattr(iterator, "close", lambda: None)()


async def read_json(request: Request) -> Any:
    """The body as JSON. One that is not JSON, or that nests deeper than any request of this API (the parser's
    recursion would otherwise end in a 500 with a traceback in the log), is a 400 naming the body."""
    too_deep = ApiError(400, f"The request body nests JSON more than {MAX_BODY_DEPTH} levels deep", param="body")
    try:
        document = json.loads(await request.body())
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"The request body is not valid JSON: {str(error)[:200]}", param="body") from None
    if nesting(document) > MAX_BODY_DEPTH:
        raise too_deep
    return document


def nesting(document: Any) -> int:
    """How deep arrays and objects nest in ``document`` (without recursion, so any depth can be measured)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in children)
    return deepest


async def whole(job: Job, events: AsyncIterator[tuple[str, Answer]]) -> dict[str, Any]:
    text, last = "", None
    async for delta, answer in events:
        text, last = text + delta, answer
    if last is None or not last.finished:
        raise ApiError(503, f"{job.model} gave no answer", "server_error")
    return response(job, text, finish_reason(last), usage(last))


async def sse(job: Job, events: AsyncIterator[tuple[str, Answer]]) -> AsyncIterator[bytes]:
    """Server-sent events as OpenAI sends them: one chunk per new piece of text, then ``[DONE]``."""
    first = True
    try:
        async for delta, answer in events:
            if delta or first:
                yield event(chunk(job, delta, first=first))
                first = False
            if answer.finished:
                yield event({**chunk(job, "", finish_reason(answer)), "usage": usage(answer)})
    except ApiError as error:  # the status line is sent already: the error goes in the stream
        yield event(error.body())
    finally:
        await events.aclose()
    yield b"data: [DONE]\n\n"


def event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def create_app(studio: Studio, limiter: RateLimiter, config: ApiConfig | None = None) -> FastAPI:
    """The API alone, without the web page (``python -m medalpaca_core serve``)."""
    return FastAPI(title="MedAlpaca Studio API", routes=OpenAIApi(studio, limiter, config).routes())
