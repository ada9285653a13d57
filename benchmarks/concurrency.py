"""Requests at once against the served app: continuous batching's wall time against one request alone.

Serves ``app.py`` (page and ``/v1``) in its own process as shipped (``benchmarks.load.start_server``),
with three random LoRA adapters of the default base added through ``MEDALPACA_VARIANTS``, and asks, greedy,
the diabetes question (rendered as the Compare tab renders it) for ``--max-tokens`` new tokens (default 64):

- N = 1, 2, 4, 8 concurrent ``/v1/completions`` requests for ``smol-base``, against one request alone;
- 4 at once, one each for ``smol-base`` and its 3 adapters, against the slowest of the four alone;
- 10 concurrent API requests against 10 concurrent page comparisons (``/compare``), the slowest of each.

Every request comes from its own address (``X-Forwarded-For``, trusted from loopback), so the per-visitor
rate limit refuses none. Each figure is the median of ``--repeats`` rounds, and every round runs every
scenario, so a shared machine's drift hits them alike. Then, in this process, a request sent while another
is mid-answer: its time to first token against one decoding step plus its own time to first token alone.

    .venv/bin/python -m benchmarks.concurrency [--repeats 3] [--max-tokens 64]
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml
from gradio_client import Client

from benchmarks.common import QUESTION, Row, start_server, whole_number_options
from benchmarks.workload import bench_registry, make_adapters
from medalpaca_core.engine import Studio
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.default_model import DEFAULT_ALIAS
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.text.prompts import PromptParts, render
from ui.tabs.compare import DIABETES_CONTEXT

BASE = "smol-base"
ADAPTERS = ("bench-lora-0", "bench-lora-1", "bench-lora-2")
SIZES = (2, 4, 8)
CROWD = 10
COMMAND = "python -m benchmarks.concurrency --repeats {repeats} --max-tokens {tokens}"
# The machine's load, and how OpenMP waited: with spinning barriers (the default) a 2-thread team on an
# oversubscribed CPU spends its time spinning, so a shared machine is measured with OMP_WAIT_POLICY=PASSIVE.
SHARED = (
    "CPU shared with other engineers' runs and a background fine-tune: ratios within one run count; "
    f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}"
)
ADDRESSES = (f"10.{n // 250}.{n % 250}.1" for n in itertools.count())  # one visitor per request


def registry_file(adapters: list[Path], folder: Path) -> Path:
    """The adapters as variants of the default base, for ``MEDALPACA_VARIANTS``."""
    entries = [
        {"id": name, "label": name, "base": DEFAULT_ALIAS, "adapter": str(path), "template": "medalpaca"}
        for name, path in zip(ADAPTERS, adapters, strict=True)
    ]
    path = folder / "variants.yaml"
    path.write_text(yaml.safe_dump({"variants": entries}), encoding="utf-8")
    return path


Send = Callable[[], None]  # one request, ready to go


def completion(url: str, variant: str, tokens: int) -> Send:
    """One greedy ``/v1/completions`` request."""
    prompt = render("medalpaca", PromptParts(QUESTION, DIABETES_CONTEXT))
    body = {"model": variant, "prompt": prompt, "max_tokens": tokens, "temperature": 0}
    headers = {"X-Forwarded-For": next(ADDRESSES)}
    return lambda: httpx.post(f"{url}/v1/completions", json=body, headers=headers, timeout=900).raise_for_status()


def comparison(url: str, variant: str, tokens: int) -> Send:
    """One greedy comparison of ``variant`` through the page's ``/compare`` (its client connected beforehand)."""
    headers = {"X-Forwarded-For": next(ADDRESSES)}
    client = Client(url, verbose=False, headers=headers, httpx_kwargs={"timeout": 900})
    arguments = ([variant], QUESTION, DIABETES_CONTEXT, 0, 1, 0, tokens, None)
    return lambda: client.predict(*arguments, api_name="/compare")


def together(prepare: Callable[[str, str, int], Send], url: str, variants: list[str], tokens: int) -> float:
    """Seconds from a common start until the last of ``variants``' requests (sent at once) has its answer."""
    sends = [prepare(url, variant, tokens) for variant in variants]
    start = threading.Barrier(len(sends) + 1)

    def one(send: Send) -> float:
        start.wait()
        send()
        return time.perf_counter()

    with ThreadPoolExecutor(len(sends)) as pool:
        futures = [pool.submit(one, send) for send in sends]
        start.wait()
        began = time.perf_counter()
        return max(future.result(timeout=900) for future in futures) - began


def scenarios() -> dict[str, tuple[Callable[[str, str, int], Send], list[str]]]:
    """Label -> (how each request is sent, the variant of each request)."""
    plan = {f"alone {variant}": (completion, [variant]) for variant in (BASE, *ADAPTERS)}
    plan |= {f"{n} x {BASE}": (completion, [BASE] * n) for n in SIZES}
    plan["4 variants"] = (completion, [BASE, *ADAPTERS])
    plan["10 API"] = (completion, [BASE] * CROWD)
    plan["10 page"] = (comparison, [BASE] * CROWD)
    return plan


def measure(repeats: int, tokens: int) -> dict[str, float]:
    """Median seconds per scenario over ``repeats`` rounds, against a server with the bench adapters."""
    plan = scenarios()
    with tempfile.TemporaryDirectory(prefix="medalpaca-concurrency-") as scratch:
        folder = Path(scratch)
        variants = registry_file(make_adapters(len(ADAPTERS), folder), folder)
        server, url = start_server(folder / "home", folder / "server.log", MEDALPACA_VARIANTS=str(variants))
        try:
            for variant in (BASE, *ADAPTERS):
                completion(url, variant, tokens)()  # loads the base and every adapter
            seconds: dict[str, list[float]] = {label: [] for label in plan}
            for _ in range(repeats):
                for label, (ask, asked) in plan.items():
                    seconds[label].append(together(ask, url, asked, tokens))
                    print(f"{label}: {seconds[label][-1]:.2f} s", file=sys.stderr, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    return {label: statistics.median(values) for label, values in seconds.items()}


def verdict(ratio: float, target: float) -> str:
    return f"target <= {target}x: {'met' if ratio <= target else 'missed'}"


def batch_rows(seconds: dict[str, float], repeats: int, tokens: int) -> list[Row]:
    command = COMMAND.format(repeats=repeats, tokens=tokens)
    alone = seconds[f"alone {BASE}"]
    four = seconds[f"4 x {BASE}"] / alone
    targets = {4: f"; {verdict(four, 1.7)}; moonshot {verdict(four, 1.4)}"}
    rows = [Row("concurrency", f"1 request, {BASE}", f"{alone:.2f} s", f"{tokens} new tokens; {SHARED}", command)]
    for n in SIZES:
        ratio = seconds[f"{n} x {BASE}"] / alone
        detail = f"{n} concurrent /v1/completions, median of {repeats} rounds{targets.get(n, '')}"
        rows.append(Row("concurrency", f"{n} requests at once, {BASE}", f"{ratio:.2f}x one alone", detail, command))
    slowest = max(seconds[f"alone {variant}"] for variant in (BASE, *ADAPTERS))
    mixed = seconds["4 variants"] / slowest
    rows.append(
        Row(
            "concurrency",
            f"4 requests at once, {BASE} + 3 LoRA adapters of it",
            f"{mixed:.2f}x the slowest alone",
            f"{seconds['4 variants']:.2f} s against {slowest:.2f} s; {verdict(mixed, 1.8)}",
            command,
        )
    )
    api, page = seconds["10 API"], seconds["10 page"]
    rows.append(
        Row(
            "concurrency",
            f"10 API requests vs 10 page comparisons at once, {BASE}",
            f"slowest {api:.1f} s vs {page:.1f} s",
            f"target: the API's slowest no later than the page's: {'met' if api <= page else 'missed'} "
            "(the page runs 2 comparisons at once, the API 8 requests in one batch)",
            command,
        )
    )
    return rows


def joining_row(tokens: int, repeats: int) -> Row:
    """A request sent mid-answer: its first token against one step of the running batch plus its own alone."""
    studio = Studio(bench_registry([]), ModelManager(device="cpu"))
    settings = GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens)
    probe = GenerationSettings(max_new_tokens=1)

    def first_token() -> float:
        return studio.ask([BASE], "What is asthma?", settings=probe)[BASE].stats.ttft_s

    first_token()  # loads the model
    alone, joined, running = first_token(), None, None
    for snapshot in studio.stream([BASE], QUESTION, DIABETES_CONTEXT, settings):
        running = snapshot[BASE].stats
        if running and running.new_tokens == tokens // 4 and joined is None:
            joined = first_token()  # sent while the first answer is a quarter done
    step = 1 / running.tokens_per_s
    met = joined <= step + alone
    return Row(
        "concurrency",
        "first token of a request sent mid-answer",
        f"{joined * 1000:.0f} ms",
        f"target <= one step ({step * 1000:.0f} ms) + its own first token alone ({alone * 1000:.0f} ms): "
        f"{'met' if met else 'missed'}; in-process Studio, {SHARED}",
        COMMAND.format(repeats=repeats, tokens=tokens),
    )


def rows(repeats: int = 3, max_tokens: int = 64) -> list[Row]:
    return [*batch_rows(measure(repeats, max_tokens), repeats, max_tokens), joining_row(max_tokens, repeats)]


def main() -> None:
    args = whole_number_options(__doc__, repeats=3, max_tokens=64)
    for row in rows(args.repeats, args.max_tokens):
        print(row.table_line())


if __name__ == "__main__":
    main()
