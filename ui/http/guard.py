"""What a visitor sends never reaches the server log: only a bounded, content-free summary of it does.

Gradio logs a request's inputs in full when they do not fit the event (``Received inputs: [...]``,
with a traceback) and prints a traceback holding the value for its own checks of component values
(a variant id outside the choices, a path not uploaded by a user). One request could so write up
to the body cap (16 MiB) into the log, before any rate limit. ``GuardedBlocks`` turns every refusal
of an input into a message to the visitor whose quoted values are short prefixes, and logs one
line saying which endpoint refused how many values of what size; a fault of the app itself is
logged through ``logging``, where ``BoundedFormatter`` caps every line and every record.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from gradio.block_function import BlockFunction

from medalpaca_core.text.visitor import ECHO_CHARS, brief

from .api_types import check_inputs

log = logging.getLogger("medalpaca.requests")

MAX_LINE_CHARS = 300  # one line of the log, whatever it quotes
MAX_RECORD_CHARS = 4000  # one record, a fault's traceback included
MAX_MESSAGE_CHARS = 300  # a refusal's message to the visitor
TYPE_REPR = re.compile(r"<class '([\w.]+)'>")
FAULT_MESSAGE = "The server failed on this request; the fault is logged (without what was sent)."


def endpoint(block_fn: BlockFunction) -> str:
    return f"/{block_fn.api_name}" if block_fn.api_name else f"event {block_fn._id}"


def summary(inputs: list[Any]) -> str:
    """``3 values, 1,000,102 bytes``: how much was sent, never what."""
    try:
        size = len(json.dumps(inputs, default=str))
    except (TypeError, ValueError, RecursionError):
        size = -1
    return f"{len(inputs)} values, {size:,} bytes" if size >= 0 else f"{len(inputs)} values"


def plain_types(message: str) -> str:
    """``<class 'str'>`` in a message (Gradio's and pydantic's type checks) as ``str``: escaped for the page, the
    brackets would reach an API client as ``&lt;class 'str'&gt;``."""
    return TYPE_REPR.sub(r"\1", message)


def without_long_values(message: str, inputs: list[Any]) -> str:
    """``message`` with every long text it quotes from ``inputs`` cut to a prefix, then capped as a whole."""
    for value in _texts(inputs):
        if len(value) > ECHO_CHARS and value in message:
            message = message.replace(value, brief(value))
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "…"


def _texts(value: Any, depth: int = 0) -> list[str]:
    """Every string inside a JSON-like value (dict keys too), longest first so that a part never hides a whole."""
    if isinstance(value, str):
        return [value]
    if depth > 20:
        return [str(value)]
    if isinstance(value, dict):
        parts = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        return [str(value)] if isinstance(value, float) and not math.isfinite(value) else []
    texts = [text for part in parts for text in _texts(part, depth + 1)]
    return sorted(set(texts), key=len, reverse=True)


class GuardedBlocks(gr.Blocks):
    """``gr.Blocks`` whose refusals of input are bounded messages (no traceback, no content in the log).

    ``value_checks`` maps an elem class to a check of the values sent for components of that class: it runs after
    the type checks and before Gradio's own (a choice outside the list, say), and refuses with a ``gr.Error``.
    """

    def __init__(self, *args: Any, value_checks: Mapping[str, Callable[[Any], None]] | None = None, **kwargs: Any):
        self.value_checks = dict(value_checks or {})
        super().__init__(*args, **kwargs)

    def check_values(self, components: list[Any], inputs: list[Any]) -> None:
        for component, value in zip(components, inputs, strict=False):
            classes = component.elem_classes or []
            for name in [classes] if isinstance(classes, str) else classes:
                if name in self.value_checks:
                    self.value_checks[name](value)

    def validate_inputs(self, block_fn: BlockFunction, inputs: list[Any]) -> None:
        """Gradio's own check, without quoting every value it received into the message and the log."""
        if len(inputs) < len(block_fn.inputs):
            raise gr.Error(
                f"{endpoint(block_fn)} takes {len(block_fn.inputs)} input values; {len(inputs)} were sent.",
                title="Invalid request",
                print_exception=False,
            )

    async def preprocess_data(self, block_fn: BlockFunction, inputs: list[Any], state: Any, *args: Any, **kw: Any):
        """Types first (``ui.http.api_types``), then Gradio's own checks; any refusal is a short message."""
        try:
            self.validate_inputs(block_fn, inputs)
            check_inputs(block_fn.input_parameter_names, block_fn.inputs, inputs)
            self.check_values(block_fn.inputs, inputs)
            return await super().preprocess_data(block_fn, inputs, state, *args, **kw)
        except gr.Error as error:
            if not error.print_exception:
                raise
            refused: Exception = error
        except Exception as error:
            refused = error
        log.info("%s refused its input (%s): %s", endpoint(block_fn), summary(inputs), type(refused).__name__)
        message = getattr(refused, "message", None) or str(refused)
        shown = plain_types(without_long_values(str(message), inputs))
        shown = html.escape(shown, quote=False)  # the page renders it as HTML
        raise gr.Error(shown, title="Invalid request", print_exception=False) from refused

    async def process_api(self, block_fn: BlockFunction | int, inputs: list[Any], *args: Any, **kw: Any):
        """A handler's messages pass; any other exception is logged once, bounded, and the visitor gets a message."""
        try:
            return await super().process_api(block_fn, inputs, *args, **kw)
        except gr.Error as error:
            if not error.print_exception:
                raise
            fault = error
        except Exception as error:
            fault = error
        function = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        log.error("%s failed: %s", endpoint(function), type(fault).__name__, exc_info=fault)
        raise gr.Error(FAULT_MESSAGE, title="Server error", print_exception=False) from fault


class BoundedFormatter(logging.Formatter):
    """Every line at most MAX_LINE_CHARS, every record (traceback included) at most MAX_RECORD_CHARS."""

    def format(self, record: logging.LogRecord) -> str:
        lines = [cap(line, MAX_LINE_CHARS) for line in super().format(record).splitlines()]
        return cap("\n".join(lines), MAX_RECORD_CHARS)


def cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit:,} more characters cut]"


def install_bounded_logging(level: int = logging.INFO) -> None:
    """The app's logging: one format, every handler bounded, Python warnings through it too (so capped)."""
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(BoundedFormatter(handler.formatter._fmt if handler.formatter else None))
    logging.captureWarnings(True)


async def request_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a malformed API body, without the ``input`` it would echo back in full."""
    details = [
        {"loc": [brief(p) if isinstance(p, str) else p for p in item.get("loc", ())], "msg": item.get("msg")}
        for item in error.errors()[:10]
    ]
    log.warning("%s refused a malformed body: %d errors", request.url.path[:100], len(error.errors()))
    return JSONResponse({"detail": details}, status_code=422)


EXCEPTION_HANDLERS = {RequestValidationError: request_validation_error}
