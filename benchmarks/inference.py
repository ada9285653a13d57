"""The studio's inference sections in one run: decode, side-by-side, memory, cold start and the llama.cpp reference.

Every number goes through ``medalpaca_core`` exactly as the app uses it (``benchmarks.workload``); llama.cpp's
anchor is measured first so every ratio is from this run. Memory and cold-start rows run in fresh child
processes so one row's peak does not leak into the next. One module per section: ``decode``,
``side_by_side``, ``memory``, ``cold_start``, ``reference``.

    .venv/bin/python -m benchmarks.inference [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.cold_start import cold_start_rows
from benchmarks.common import Row
from benchmarks.decode import DECODE_VARIANTS, decode_rows
from benchmarks.memory import memory_rows
from benchmarks.reference import llama_cpp_anchor, llama_cpp_rows
from benchmarks.side_by_side import compare_rows
from benchmarks.workload import bench_registry, make_adapters
from medalpaca_core.engine import Studio
from medalpaca_core.models.manager import ModelManager

SECTIONS = ("decode", "side-by-side", "memory", "cold start", "reference")


def run(
    repeats: int, sections: tuple[str, ...] = SECTIONS, decode_variants: tuple[str, ...] = DECODE_VARIANTS
) -> list[Row]:
    """The rows of ``sections`` (all by default), llama.cpp's anchor first so every ratio is from this run."""
    anchor = llama_cpp_anchor(repeats)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        adapters = make_adapters(4, Path(scratch))
        studio = Studio(bench_registry(adapters), ModelManager(device="cpu"))
        if "decode" in sections:
            rows += decode_rows(studio, repeats, anchor, decode_variants)
        if "side-by-side" in sections:
            rows += compare_rows(studio, repeats, anchor)
        del studio
        if "memory" in sections:
            rows += memory_rows(adapters)
    if "cold start" in sections:
        rows += cold_start_rows(repeats)
    return rows + (llama_cpp_rows(anchor) if "reference" in sections else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the median is reported")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    rows = run(args.repeats)
    for row in rows:
        print(f"{row.section:13} {row.name:45} {row.value:22} {row.detail}")
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
