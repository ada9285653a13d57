"""Many visitors at once against the real app on the real default model: completed, refused, latency, memory.

Serves ``app.py`` in its own process, exactly as shipped (two generations at once, 32 requests waiting,
the default per-client rate limit) with ``MEDALPACA_MEMORY_BUDGET``, on a free port of 127.0.0.1. Then
CLIENTS visitors (gradio_client; each sends its own X-Forwarded-For, trusted from loopback here, as
distinct visitors behind a reverse proxy do) each run COMPARISONS comparisons of the default variants,
alternately all three and the first two, greedy with a short answer. All traffic stays on the loopback
interface, every request has a timeout and the run has a deadline, after which the server is stopped.

Reports requests completed and refused (queue full, rate limit), Submit-to-last-token latency (p50,
p95), the server's peak resident memory against the budget, and tracebacks in the server's log.

    .venv/bin/python -m benchmarks.load [--clients 8] [--comparisons 3] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
from gradio_client import Client

from benchmarks.common import QUESTION, SERVER_BUDGET, Row, start_server
from medalpaca_core.engine import Studio
from medalpaca_core.models.memory import format_bytes, parse_size
from medalpaca_core.models.registry import Registry
from ui.tabs.compare import DIABETES_CONTEXT

REQUEST_TIMEOUT_S = 300
DEADLINE_S = 900
COMMAND = "python -m benchmarks.load"


@dataclass(frozen=True)
class Outcome:
    kind: str  # completed | queue full | rate limit | failed
    seconds: float
    detail: str = ""


def classify(error: Exception) -> str:
    text = str(error)
    if "Queue is full" in text:
        return "queue full"
    if "Too many requests" in text:
        return "rate limit"
    return "failed"


def visitor(url: str, number: int, plans: list[list[str]], max_new_tokens: int, start: threading.Barrier) -> list:
    client = Client(url, verbose=False, headers={"X-Forwarded-For": f"10.0.0.{number + 1}"})
    start.wait()
    outcomes = []
    for variants in plans:
        started = time.perf_counter()
        try:
            job = client.submit(
                variants, QUESTION, DIABETES_CONTEXT, 0, 1, 0, max_new_tokens, None, api_name="/compare"
            )
            outputs = job.result(timeout=REQUEST_TIMEOUT_S)
            statuses = [outputs[2 * n + 1] for n in range(len(variants))]
            failed = [status for status in statuses if not status.startswith("✓")]
            kind = "failed" if failed else "completed"
            outcomes.append(Outcome(kind, time.perf_counter() - started, "; ".join(failed)))
        except Exception as error:  # refusals arrive as exceptions; classify() reads their message
            outcomes.append(Outcome(classify(error), time.perf_counter() - started, str(error)))
    return outcomes


def sample_memory(pid: int, stop: threading.Event, peak: list[int]) -> None:
    process = psutil.Process(pid)
    while not stop.wait(0.2):
        try:
            peak[0] = max(peak[0], process.memory_info().rss)
        except psutil.Error:
            return


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(clients: int = 8, comparisons: int = 3, max_new_tokens: int = 32) -> list[Row]:
    """Start the app, send the visitors, stop the app; one Row per figure."""
    registry = Registry.load(finetuned=Path(tempfile.mkdtemp()))  # what a fresh MEDALPACA_HOME offers
    defaults = Studio(registry).default_variants()
    plans = [defaults if n % 2 == 0 else defaults[:2] for n in range(comparisons)]
    with tempfile.TemporaryDirectory(prefix="medalpaca-load-") as scratch:
        log = Path(scratch) / "server.log"
        server, url = start_server(Path(scratch) / "home", log)
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=sample_memory, args=(server.pid, stop, peak), daemon=True)
        sampler.start()
        started = time.perf_counter()
        try:
            start = threading.Barrier(clients)
            with ThreadPoolExecutor(clients) as pool:
                futures = [pool.submit(visitor, url, n, plans, max_new_tokens, start) for n in range(clients)]
                outcomes = [o for future in futures for o in future.result(timeout=DEADLINE_S)]
        finally:
            wall = time.perf_counter() - started
            stop.set()
            server.terminate()
            server.wait(timeout=60)
        tracebacks = log.read_text(errors="replace").count("Traceback (most recent call last)")
    counts = Counter(outcome.kind for outcome in outcomes)
    latencies = [outcome.seconds for outcome in outcomes if outcome.kind == "completed"]
    refused = counts["queue full"] + counts["rate limit"]
    failures = sorted({outcome.detail for outcome in outcomes if outcome.kind == "failed"})
    what = f"{clients} clients x {comparisons} comparisons"
    return [
        Row(
            "load",
            f"{what} ({len(defaults)} or 2 default variants, {max_new_tokens} new tokens)",
            f"{counts['completed']} completed, {refused} refused",
            f"refused: {counts['queue full']} queue full, {counts['rate limit']} rate limit; {counts['failed']} failed"
            + (f" ({failures[0][:120]})" if failures else "")
            + f"; {tracebacks} tracebacks in the server log; {wall:.0f} s for all",
            COMMAND,
        ),
        Row(
            "load",
            "latency, Submit to last token",
            f"p50 {statistics.median(latencies):.1f} s, p95 {percentile(latencies, 0.95):.1f} s"
            if latencies
            else "no request completed",
            "queueing included (2 generations at once; variants of one base answer in one batch)",
            COMMAND,
        ),
        Row(
            "load",
            "server memory",
            f"peak RSS {peak[0] / 2**20:,.0f} MiB",
            f"MEDALPACA_MEMORY_BUDGET={SERVER_BUDGET} ({format_bytes(parse_size(SERVER_BUDGET))}) caps the loaded "
            "models; RSS adds Python, torch and Gradio",
            COMMAND,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--comparisons", type=int, default=3, help="comparisons per client")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    for row in run(args.clients, args.comparisons, args.max_new_tokens):
        print(f"{row.section:6} {row.name:60} {row.value:30} {row.detail}")


if __name__ == "__main__":
    main()
