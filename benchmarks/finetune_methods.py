"""Training cost of the paper's three methods on the embedded base: tokens/s and peak memory.

Each method runs a short ``finetune.train.run`` (the ``smol-*`` configs: bundled demo data, same
batches and cutoff) in a fresh process, so the peak RSS of one run is not inherited by the next.
Tokens/s counts answer and prompt tokens (not padding) over optimizer steps only.

    .venv/bin/python benchmarks/finetune_methods.py [--steps 8] [--methods full lora lora-8bit] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

METHODS = ("full", "lora", "lora-8bit")


def measure(method: str, steps: int, output: str) -> dict:
    """One short run of ``smol-METHOD`` (runs in a child process)."""
    from finetune.config import load_file, resolve
    from finetune.train import run

    overrides = {"output": output, "train": {"max_steps": steps, "eval_steps": 0, "save_steps": steps}}
    config = resolve(load_file(f"smol-{method}"), overrides)
    result = run(config)
    return {
        "method": method,
        "precision": config.resolved_precision,
        "optimizer": config.resolved_optim,
        "steps": result.steps,
        "train_tokens": result.train_tokens,
        "tokens_per_s": round(result.tokens_per_s, 1),
        "peak_rss_mib": round(result.peak_rss_bytes / 2**20),
        "trainable_params": result.trainable_params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per method (batch 8)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    os.chdir(ROOT)  # the configs name the bundled data relative to the project root
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for method in args.methods:
            context = multiprocessing.get_context("spawn")  # a fresh interpreter: its own peak RSS
            with context.Pool(1) as pool:
                rows.append(pool.apply(measure, (method, args.steps, str(Path(scratch) / method))))
    print("\n| method | precision | optimizer | trainable params | tokens/s | peak RSS |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['method']} | {row['precision']} | {row['optimizer']} | {row['trainable_params']:,} "
            f"| {row['tokens_per_s']:,.0f} | {row['peak_rss_mib']:,} MiB |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
