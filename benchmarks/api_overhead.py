"""What the OpenAI-compatible API adds to a generation, against the same generation through the Compare tab.

Serves ``app.py`` (page and ``/v1`` on one server) on a free localhost port with the real default model,
then asks ``smol-base`` the seed report's diabetes question, greedy, alternately through ``/compare``
(gradio_client, as the page does) and ``POST /v1/completions`` (the same prompt, rendered as the Compare
tab renders it). Both give the same text, so they run the same tokens; the row is the median of the
paired differences (API minus Compare), request to last token. Alternating pairs cancel the drift of a
shared machine.

    .venv/bin/python benchmarks/api_overhead.py [--pairs 10] [--max-new-tokens 16]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from gradio_client import Client

from app import api_routes, build_demo, launch
from benchmarks.common import QUESTION, Row, free_port, whole_number_options
from medalpaca_core.engine import Studio
from medalpaca_core.serving.ratelimit import RateLimiter
from medalpaca_core.text.prompts import PromptParts, render
from ui.tabs.compare import DIABETES_CONTEXT

VARIANT = "smol-base"


def measure(pairs: int, max_new_tokens: int) -> tuple[list[float], list[float]]:
    """Seconds to the last token through Compare and through the API, ``pairs`` times each (after a warm-up)."""
    studio, limiter = Studio(), RateLimiter(None)
    demo = build_demo(studio, limiter)
    _, url, _ = launch(
        demo, server_port=free_port(), prevent_thread_lock=True, quiet=True, routes=api_routes(studio, limiter)
    )
    client = Client(url, verbose=False)
    prompt = render(studio.variant(VARIANT).template, PromptParts(QUESTION, DIABETES_CONTEXT))
    body = {"model": VARIANT, "prompt": prompt, "max_tokens": max_new_tokens, "temperature": 0}
    compare_args = ([VARIANT], QUESTION, DIABETES_CONTEXT, 0, 1, 0, max_new_tokens, None)
    compare_s, api_s = [], []
    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=300) as http:
            for number in range(pairs + 1):  # the first pair loads the model and is left out
                started = time.perf_counter()
                outputs = client.predict(*compare_args, api_name="/compare")
                compared = time.perf_counter() - started
                started = time.perf_counter()
                reply = http.post("/v1/completions", json=body).json()
                answered = time.perf_counter() - started
                assert reply["choices"][0]["text"] == outputs[0]["value"], "the two paths gave different text"
                if number:
                    compare_s.append(compared)
                    api_s.append(answered)
    finally:
        demo.close()
    return compare_s, api_s


def rows(pairs: int = 10, max_new_tokens: int = 16) -> list[Row]:
    compare_s, api_s = measure(pairs, max_new_tokens)
    added_ms = statistics.median(api - compare for api, compare in zip(api_s, compare_s, strict=True)) * 1000
    return [
        Row(
            "app",
            f"/v1/completions vs Compare, {VARIANT}",
            f"{added_ms:+.0f} ms added",
            f"median of {pairs} alternating pairs (API minus Compare, request to last token); the Compare path "
            f"{statistics.median(compare_s) * 1000:.0f} ms, the API {statistics.median(api_s) * 1000:.0f} ms; "
            f"greedy, {max_new_tokens} new tokens, same text",
            f"python benchmarks/api_overhead.py --pairs {pairs} --max-new-tokens {max_new_tokens}",
        )
    ]


def main() -> None:
    args = whole_number_options(__doc__, pairs=10, max_new_tokens=16)
    print("\n".join(row.table_line() for row in rows(args.pairs, args.max_new_tokens)))


if __name__ == "__main__":
    main()
