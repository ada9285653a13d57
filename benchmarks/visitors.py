"""One visitor alone, then two at once, against the real app as shipped: how fast each one's answer comes.

Serves ``app.py`` in its own process (its own threads and OpenMP settings, exactly as a Space runs
it; ``benchmarks.common.start_server``) and asks over HTTP for one variant's greedy answer of at most
128 new tokens to the diabetes question. A visitor's speed is new tokens per second from Submit to
the last token, queueing included; the decode rate the app reports is beside it. Two visitors at
once ask the same base (they take turns on it) and two different bases (they run side by side,
each on its share of the cores: ``medalpaca_core.generation.cpu_share``).

    .venv/bin/python -m benchmarks.visitors [--runs 3]
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gradio_client import Client

from benchmarks.app_compare import STATS
from benchmarks.common import QUESTION, Row, start_server, whole_number_options
from ui.tabs.compare import DIABETES_CONTEXT

MAX_NEW_TOKENS = 128
COMMAND = "python -m benchmarks.visitors"
SCENARIOS = {  # label -> the variant each visitor asks
    "1 visitor": ["smol-base"],
    "2 visitors, one base": ["smol-base", "smol-base"],
    "2 visitors, two bases": ["smol-base", "smol-nf4"],
}


@dataclass(frozen=True)
class Visit:
    """One answer as its visitor saw it."""

    seconds: float  # Submit to last token
    tokens: int
    decode_tok_s: float  # the rate the app reports (after the first token)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds


def ask(client: Client, variant: str, start: threading.Barrier) -> Visit:
    start.wait()
    started = time.perf_counter()
    job = client.submit([variant], QUESTION, DIABETES_CONTEXT, 0, 1, 0, MAX_NEW_TOKENS, None, api_name="/compare")
    outputs = job.result(timeout=600)
    seconds = time.perf_counter() - started
    # the column's status line, wherever Compare puts it among its outputs
    found = next(match for output in outputs if isinstance(output, str) and (match := STATS.search(output)))
    tokens, rate = found.groups()
    return Visit(seconds, int(tokens), float(rate))


def measure(runs: int) -> dict[str, list[list[Visit]]]:
    """Each scenario ``runs`` times (after one run that loads the models): a list of visits per run."""
    results: dict[str, list[list[Visit]]] = {}
    with tempfile.TemporaryDirectory(prefix="medalpaca-visitors-") as scratch:
        server, url = start_server(Path(scratch) / "home", Path(scratch) / "server.log")
        try:
            clients = [Client(url, verbose=False, headers={"X-Forwarded-For": f"10.0.1.{n}"}) for n in (1, 2)]
            for label, variants in SCENARIOS.items():
                start = threading.Barrier(len(variants))
                with ThreadPoolExecutor(len(variants)) as pool:
                    visits = []
                    for _ in range(runs + 1):
                        futures = [pool.submit(ask, c, v, start) for c, v in zip(clients, variants, strict=False)]
                        visits.append([future.result() for future in futures])
                results[label] = visits[1:]
        finally:
            server.terminate()
            server.wait(timeout=60)
    return results


def rows(runs: int = 3, single_stream_tok_s: float | None = None) -> list[Row]:
    """One row per scenario; ``single_stream_tok_s``: the decode row of smol-base from the same run."""
    results = measure(runs)
    alone = statistics.median(run[0].tok_s for run in results["1 visitor"])
    alone_decode = statistics.median(run[0].decode_tok_s for run in results["1 visitor"])
    table = []
    for label, visits in results.items():
        speeds = [statistics.median(run[n].tok_s for run in visits) for n in range(len(SCENARIOS[label]))]
        if label == "1 visitor":
            detail = f"decode {alone_decode:.1f} tok/s as the app reports it"
            if single_stream_tok_s:
                detail += f" ({alone_decode / single_stream_tok_s:.2f}x the benchmark's single stream, smol-base)"
        else:
            shares = ", ".join(f"{speed / alone:.2f}x" for speed in speeds)
            detail = f"each visitor {shares} of one visitor alone ({', '.join(SCENARIOS[label])})"
        table.append(
            Row(
                "visitors",
                f"{label}: {', '.join(SCENARIOS[label])}",
                " / ".join(f"{speed:.1f}" for speed in speeds) + " tok/s",
                f"{detail}; new tokens over Submit to last token, median of {runs}, over HTTP, app as shipped",
                COMMAND,
            )
        )
    return table


def main() -> None:
    args = whole_number_options(__doc__, runs=3)
    for row in rows(args.runs):
        print(f"{row.section:6} {row.name:50} {row.value:24} {row.detail}")


if __name__ == "__main__":
    main()
