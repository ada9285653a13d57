"""Time from Submit to the last token for the app's default comparison, measured through the real app.

Serves ``app.py`` on a free localhost port and submits the seed report's diabetes question to the
default variants over HTTP with ``gradio_client``, the way the browser does; the first run includes
loading the models, the following ones do not.

    .venv/bin/python benchmarks/app_compare.py [--runs 3] [--max-new-tokens 128]
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradio_client import Client

from app import build_demo, launch
from benchmarks.common import QUESTION, Row, free_port, whole_number_options
from medalpaca_core.engine import Studio
from ui.tabs.compare import DIABETES_CONTEXT


@dataclass(frozen=True)
class Run:
    """One comparison as the browser sees it: seconds from Submit, and each column's status line."""

    first_text_s: float
    last_token_s: float
    statuses: list[str]


STATS = re.compile(r"(\d+) tokens · [^·]+ · ([\d.]+) tok/s")  # a finished answer's line (ui.views.common.finished_line)


def answers(outputs: list[Any], variants: list[str]) -> list[dict[str, Any]]:
    """Compare's answer boxes among its outputs: the updates labelled with a variant id (columns not blind)."""
    return [out for out in outputs if isinstance(out, dict) and out.get("label") in variants]


def statuses(outputs: list[Any], variants: list[str]) -> list[str]:
    """'variant: stats line' per column: its answer box and the first stats line after it, wherever they sit."""
    lines = []
    for position, out in enumerate(outputs):
        if isinstance(out, dict) and out.get("label") in variants:
            after = (o for o in outputs[position + 1 :] if isinstance(o, str) and STATS.search(o))
            lines.append(f"{out['label']}: {next(after, 'no stats')}")
    return lines


def measure(runs: int, max_new_tokens: int) -> tuple[list[str], list[Run]]:
    """The default variants, and ``runs`` comparisons of them through the served app (the first loads them)."""
    studio = Studio()
    variants = studio.default_variants()
    demo = build_demo(studio)
    _, url, _ = launch(demo, server_port=free_port(), prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False)
    results = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            job = client.submit(
                variants, QUESTION, DIABETES_CONTEXT, 0, 1, 0, max_new_tokens, None, api_name="/compare"
            )
            texts = (out for out in job if any(answer["value"] for answer in answers(out, variants)))
            first = next(time.perf_counter() - started for _ in texts)
            outputs = job.result()
            total = time.perf_counter() - started
            results.append(Run(first, total, statuses(outputs, variants)))
    finally:
        demo.close()
    return variants, results


def rows(runs: int = 3, max_new_tokens: int = 128) -> list[Row]:
    """The benchmark table's row: the warm median, with the cold (loading) run beside it."""
    variants, results = measure(runs, max_new_tokens)
    warm = statistics.median(run.last_token_s for run in results[1:])
    first = statistics.median(run.first_text_s for run in results[1:])
    return [
        Row(
            "app",
            f"default comparison: {', '.join(variants)}",
            f"{warm:.1f} s Submit to last token",
            f"warm median of {len(results) - 1}; first text after {first:.1f} s; the first run, which loads the "
            f"models, {results[0].last_token_s:.1f} s; greedy, at most {max_new_tokens} new tokens, over HTTP",
            f"python benchmarks/app_compare.py --runs {runs}",
        )
    ]


def main() -> None:
    args = whole_number_options(__doc__, runs=3, max_new_tokens=128)
    variants, results = measure(args.runs, args.max_new_tokens)
    print(f"default variants: {', '.join(variants)}; greedy, at most {args.max_new_tokens} new tokens")
    for number, run in enumerate(results, 1):
        kind = "cold, loads the models" if number == 1 else "warm"
        times = f"first text after {run.first_text_s:.1f} s, last token after {run.last_token_s:.1f} s"
        print(f"run {number} ({kind}): {times}")
        for status in run.statuses:
            print(f"    {status}")


if __name__ == "__main__":
    main()
