"""Time from Submit to the last token for the app's default comparison, measured through the real app.

Serves ``app.py`` on a free localhost port and submits the seed report's diabetes question to the
default variants over HTTP with ``gradio_client``, the way the browser does; the first run includes
loading the models, the following ones do not.

    .venv/bin/python benchmarks/app_compare.py [--runs 3] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradio_client import Client

from app import build_demo, launch
from medalpaca_core.engine import Studio
from medalpaca_core.selection import default_variants
from ui.compare import DIABETES_CONTEXT

QUESTION = "What are the symptoms of diabetes?"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()
    studio = Studio()
    variants = default_variants(studio.registry, studio.manager)
    demo = build_demo(studio)
    _, url, _ = launch(demo, server_port=free_port(), prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False)
    print(f"default variants: {', '.join(variants)}; greedy, at most {args.max_new_tokens} new tokens")
    try:
        for run in range(args.runs):
            started = time.perf_counter()
            job = client.submit(
                variants, DIABETES_CONTEXT, QUESTION, 0, 1, 0, args.max_new_tokens, None, api_name="/compare"
            )
            first = next(time.perf_counter() - started for out in job if any(o["value"] for o in out[0:8:2]))
            outputs = job.result()
            total = time.perf_counter() - started
            kind = "cold, loads the models" if run == 0 else "warm"
            print(f"run {run + 1} ({kind}): first text after {first:.1f} s, last token after {total:.1f} s")
            for column, status in zip(
                outputs[0 : 2 * len(variants) : 2], outputs[1 : 2 * len(variants) : 2], strict=True
            ):
                print(f"    {column['label']}: {status}")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
