"""MedAlpaca Studio web app: compare variants side by side, chat, vote, export; also a Hugging Face Space.

``python app.py`` (or ``make demo``) serves it on http://127.0.0.1:7860. Set GRADIO_SERVER_NAME=0.0.0.0
to serve the network (a Space does) and GRADIO_SERVER_PORT to pick the port. Startup loads no
model: each variant is loaded the first time a question needs it, with progress shown meanwhile.
What the app promises a public audience (limits, rate limit, what it loads) is in SECURITY.md.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from medalpaca_core.arena.votes import VoteStore
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation.exams import MAX_EXAM_BYTES
from medalpaca_core.runtime.hosting import persistence_notice
from medalpaca_core.serving.clients import untrusting_server_env
from medalpaca_core.serving.openai_api import ApiConfig, OpenAIApi, api_enabled
from medalpaca_core.serving.ratelimit import RateLimiter
from ui.http.guard import EXCEPTION_HANDLERS, GuardedBlocks, install_bounded_logging
from ui.http.limits import BodySizeLimit, MiB
from ui.tabs.chat import build_chat_tab
from ui.tabs.compare import build_compare_tab
from ui.tabs.evaluate import MAX_UPLOAD_FILES, build_evaluate_tab
from ui.tabs.models import build_models_tab
from ui.views.pickers import PICKER_CLASS, refuse_unavailable

TITLE = "MedAlpaca Studio"
INTRO = (
    "# ⚕ MedAlpaca Studio\n"
    "Ask medical instruction-tuned LLaMA models the same question and watch their answers stream side by side "
    "— the way the [MedAlpaca paper](https://arxiv.org/abs/2304.08247) compares full, LoRA and 8-bit models. "
    "Vote for the best answer, chat with one model, or look up every variant under **Models**."
)
# Two generations at once: on a small CPU more would only slow each other down; the rest wait in line.
CONCURRENCY_LIMIT = 2
QUEUE_SIZE = 32
# Gradio's queue looks for work every 1 ms and for progress to send every 10 ms (on Windows every 50 and
# 100 ms); every wake-up takes the GIL from the thread that generates, which made one visitor's stream
# ~11% slower with the server merely up (BENCHMARKS.md, visitors). A request now waits at most 20 ms to start.
QUEUE_POLL_S, PROGRESS_POLL_S = 0.02, 0.1
THEME = gr.themes.Soft(primary_hue="teal", secondary_hue="sky", neutral_hue="slate")
CSS = """
.disclaimer { background: #fff7e6; border: 1px solid #f5c16c; border-radius: 8px; padding: 4px 12px; }
.dark .disclaimer { background: #3a2c12; border-color: #8a6424; }
.hint, .answer-status { font-size: 0.9em; opacity: 0.85; }
.run-status { min-height: 1.6em; }
.answer textarea { font-size: 0.95em; line-height: 1.45; }
/* The answer columns share one grid (CSS subgrid): each row of a column (name, answer, status, notes, prompt) is as
   tall as the tallest of that row across the columns, so every row starts level with its neighbours' however long
   a status line or a note is. On a phone the grid has one column and the columns stack. */
#compare-answers { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); align-items: start; }
#compare-answers > .answer-column { display: grid; grid-row: span 5; grid-template-rows: subgrid; }
/* Answers as formatted text (medalpaca_core.answer_markdown), the plain text's box behind "Plain text"; a fixed
   height, so that the rows under it do not move while the answers stream. */
#compare-answers .answer textarea, #compare-answers.plain .answer-md { display: none; }
#compare-answers.plain .answer textarea { display: block; }
.answer-md { height: 18em; overflow-y: auto; padding: 4px 12px; border: 1px solid var(--border-color-primary);
  border-radius: var(--radius-lg); font-size: 0.95em; overflow-wrap: anywhere; }  /* a long "word" wraps in its box */
.answer-md .answer-md { height: auto; overflow: visible; padding: 0; border: none; }  /* Gradio nests the class */
.answer-status { min-height: 4.2em; }
#compare-question textarea { min-height: 4.2em; }  /* a one-line box (Enter submits) that looks like room to write */
.answer-column.chosen { outline: 3px solid var(--color-accent); outline-offset: 4px; border-radius: 8px; }
.answer-column.chosen { position: relative; }  /* the mark sits above the column: its rows stay level */
.answer-column.chosen::before { content: "★ Your pick"; position: absolute; top: -1.6em; left: 4px;
  font-weight: 600; color: var(--color-accent); }
@media (max-width: 640px) { #leaderboard-table { font-size: 0.8em; } }  /* five columns in a phone's width */
/* Evaluate's tables keep numbers and words whole; a table wider than the screen scrolls inside itself */
.wide-tables table { display: block; max-width: 100%; overflow-x: auto; }
.wide-tables th, .wide-tables td { white-space: nowrap; }
.chat-text .message-content .md { white-space: pre-wrap; }  /* Markdown is off: keep the model's line breaks */
"""


def build_demo(studio: Studio | None = None, limiter: RateLimiter | None = None) -> gr.Blocks:
    """The whole app; ``studio`` defaults to the registry and model manager of this machine, ``limiter`` (shared
    by every endpoint that runs a model) to MEDALPACA_RATE_LIMIT."""
    studio = studio or Studio()
    limiter = limiter or RateLimiter.from_env()
    checks = {PICKER_CLASS: partial(refuse_unavailable, studio)}  # an API call naming one is told why, by name
    with GuardedBlocks(
        title=TITLE, analytics_enabled=False, delete_cache=(3600, 24 * 3600), value_checks=checks
    ) as demo:
        gr.Markdown(INTRO)
        notice = persistence_notice()
        if notice:
            gr.Markdown(notice, elem_classes="disclaimer")
        with gr.Tabs(overflow_behavior="wrap"):  # on a phone every tab stays in sight, none behind a menu
            compare = build_compare_tab(studio, VoteStore(), limiter)
            build_chat_tab(studio, limiter)
            build_evaluate_tab(studio, limiter)
            build_models_tab(studio)
        demo.load(compare.reopen, None, compare.reopened, api_visibility="private", concurrency_limit=None)
    return demo


def api_routes(studio: Studio, limiter: RateLimiter) -> list[Any]:
    """The OpenAI-compatible routes (``/v1/...``) on the app's studio and rate limit, unless the API is off
    (on a Space unless MEDALPACA_OPENAI_API=1)."""
    if not api_enabled():
        return []
    return OpenAIApi(studio, limiter, ApiConfig.from_env(max_waiting=QUEUE_SIZE)).routes()


def launch(
    demo: gr.Blocks, queue_size: int = QUEUE_SIZE, routes: list[Any] | None = None, **options: Any
) -> tuple[Any, str, str]:
    """Queue and serve ``demo``: 127.0.0.1 unless GRADIO_SERVER_NAME says otherwise; ``routes`` (the API's)
    are served beside Gradio's; ``options`` go to launch.

    uvicorn is told to trust no forwarded address: ``medalpaca_core.serving.clients.client_key`` decides whom to trust.
    Requests beyond ``queue_size`` waiting are refused with "Queue is full" rather than piling up; uploads
    are capped at an exam file's size and other request bodies far above any real question (413).
    """
    untrusting_server_env()
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=queue_size)
    slow_down_polling(demo)
    options.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    uploads = MAX_UPLOAD_FILES * MAX_EXAM_BYTES + MiB  # the files of one exam in one request, plus form overhead
    middleware = [Middleware(BodySizeLimit, upload_max_bytes=uploads)]
    app_kwargs = {"middleware": middleware, "exception_handlers": EXCEPTION_HANDLERS, "routes": routes or []}
    return demo.launch(theme=THEME, css=CSS, max_file_size=MAX_EXAM_BYTES, app_kwargs=app_kwargs, **options)


def slow_down_polling(demo: gr.Blocks) -> None:
    """Gradio's queue polls less often (``QUEUE_POLL_S``); its polling intervals are attributes, not options."""
    queue = demo._queue
    queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_S)
    queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, PROGRESS_POLL_S)


def main() -> None:
    # OpenMP's default (spinning) wait is what makes one visitor's stream fast; several at once share the
    # cores through per-generation thread budgets (medalpaca_core.generation.cpu_share) instead of passive waiting.
    install_bounded_logging()  # no line of the log quotes more than a short prefix of what a visitor sent
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    notice = persistence_notice()
    if notice:
        logging.getLogger("medalpaca_studio").warning(notice)
    studio, limiter = Studio(), RateLimiter.from_env()
    launch(build_demo(studio, limiter), routes=api_routes(studio, limiter))


if __name__ == "__main__":
    main()
