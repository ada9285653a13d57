"""Run every benchmark in one go, print the table and write BENCHMARKS.md.

    .venv/bin/python -m benchmarks [--repeats 3] [--train-steps 8] [--skip-training] [--skip-load]

All rows come from one run on one machine, so their ratios are comparable; absolute numbers move
with whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import multiprocessing
import platform
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import ROOT, Row
from benchmarks.decode import DECODE_VARIANTS
from benchmarks.inference import run as run_inference

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "gradio")
TARGETS = """\
| target | where to read it |
|---|---|
| (14) 4 variants sharing a base in at most 1.3x the wall time of one, 2 in 1.15x | side-by-side; mixed batch |
| (14) the K=4 batch decodes at least as many tokens/s in all as llama.cpp's one stream | side-by-side, K=4 |
| (14) the fastest trustworthy single stream at least 0.5x llama.cpp | decode; reference, llama.cpp |
| (14) one visitor of the app as fast as the single stream; 2 at once each >= 0.45x | visitors |
| memory for 4 adapter variants at most 1.1x one base | memory, 4 adapter variants on one shared base |
| single-stream bf16 decode at least 30 tok/s, first token under 0.3 s | decode, smol-base |
| cached cold start of the default model under 3 s | cold start, cached load (the load, and from process start) |
| (issue 3) Submit to last token, the app's default 3-variant comparison | app, default comparison |
| (issue 15) loglik on 1,000 four-option questions in under 5 minutes | evaluation, loglik |
| (issue 24) loglik at least 5 four-option questions/s, 2.5x the full-row path eval had before | evaluation, loglik |
| (issue 24) lm-eval through /v1 picks as eval does on at least 99% of questions | evaluation, lm-eval |
| (issue 13) /v1/completions adds under 50 ms to the Compare path's generation | app, /v1/completions vs Compare |
| (issue 12) 100,000 votes over 20 variants rated with 200 bootstrap resamples in under 10 s | ratings |
| (issue 23) 4 concurrent API requests for one variant in <= 1.7x one alone; base + 3 adapters <= 1.8x | concurrency |
| (issue 23) a request sent mid-answer: first token within one step plus its own prefill | concurrency |
| (issue 23) 10 concurrent API requests: the slowest no later than the slowest of 10 page comparisons | concurrency |
"""


PARTIAL_SECTIONS = (
    "decode",
    "side-by-side",
    "memory",
    "cold start",
    "reference",
    "mixed batch",
    "visitors",
    "concurrency",
    "loglik",
)
# sections measured by their own scripts, not benchmarks.inference
APART = ("visitors", "mixed batch", "concurrency", "loglik")


def in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a new interpreter, so one benchmark's imports, caches and threads never time
    another's."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def training_rows(steps: int) -> list[Row]:
    """Full vs LoRA vs LoRA-8bit training cost (``benchmarks/finetune_methods.py``), each in a fresh process."""
    from benchmarks.finetune_methods import METHODS, measure

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for method in METHODS:
            result = in_fresh_process(measure, method, steps, str(Path(scratch) / method))
            rows.append(
                Row(
                    "training",
                    f"{method} ({result['precision']}, {result['optimizer']})",
                    f"{result['tokens_per_s']:.0f} tok/s",
                    f"peak RSS {result['peak_rss_mib']:,} MiB; {result['trainable_params']:,} trainable parameters",
                    f"python benchmarks/finetune_methods.py --steps {steps}",
                )
            )
    return rows


def app_rows(runs: int, single_stream_tok_s: float | None) -> list[Row]:
    """The app's default comparison over HTTP (``benchmarks/app_compare.py``) and what /v1/completions adds to
    it (``benchmarks/api_overhead.py``), each in a fresh process; one visitor and two at once against the
    served app (``benchmarks/visitors.py``)."""
    from benchmarks import api_overhead, app_compare, visitors

    compare = in_fresh_process(app_compare.rows, runs) + in_fresh_process(api_overhead.rows)
    return compare + visitors.rows(runs - 1, single_stream_tok_s)


def concurrency_rows(repeats: int) -> list[Row]:
    """Requests at once against the served app (``benchmarks/concurrency.py``), in a fresh process."""
    from benchmarks import concurrency

    return in_fresh_process(concurrency.rows, repeats)


def mixed_batch_rows(repeats: int) -> list[Row]:
    """CPU seconds per way of applying adapters (``benchmarks/mixed_batch.py``), in a fresh one-thread process."""
    from benchmarks import mixed_batch

    return in_fresh_process(mixed_batch.run, repeats)


def single_stream(rows: list[Row]) -> float | None:
    """The bf16 base's decode rate from the inference rows, the yardstick of the app's visitors."""
    for row in rows:
        if row.section == "decode" and row.name.startswith("smol-base "):
            return float(row.value.split()[0])
    return None


def load_rows() -> list[Row]:
    """Concurrent clients against the real app (``benchmarks/load.py``), where that script exists."""
    try:
        from benchmarks.load import run as run_load
    except ImportError:
        return []
    return run_load()


def loglik_rows(questions: int) -> list[Row]:
    """Log-likelihood evaluation speed (``benchmarks/eval_loglik.py``) on ``questions`` questions, in a fresh
    process."""
    from benchmarks import eval_loglik

    return in_fresh_process(eval_loglik.rows, questions)


def evaluation_rows(questions: int) -> list[Row]:
    """Log-likelihood evaluation speed and lm-evaluation-harness's agreement with it
    (``benchmarks/harness_agreement.py``), each in a fresh process."""
    from benchmarks import harness_agreement

    return loglik_rows(questions) + in_fresh_process(harness_agreement.rows, questions)


def rating_rows() -> list[Row]:
    """Bradley–Terry ratings of 100,000 synthetic votes (``benchmarks/ratings.py``)."""
    from benchmarks.ratings import rows

    return rows()


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    versions = ", ".join(f"{name} {version(name)}" for name in PACKAGES)
    return (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, {memory:.0f} GiB; "
        f"Python {platform.python_version()}; {versions}"
    )


def markdown(rows: list[Row] | list[str], command: str, provenance: str = "") -> str:
    """The whole file; ``rows`` as Rows, or as table lines already (``provenance`` then says where from)."""
    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        provenance or f"All rows come from one run of `{command}`; timings are medians.",
        "Greedy decoding, a ~200-token prompt and exactly 128 new tokens unless a row says otherwise.",
        "",
        TARGETS,
        "| section | what | result | detail | reproduce |",
        "|---|---|---|---|---|",
    ]
    lines += [row if isinstance(row, str) else row.table_line() for row in rows]
    return "\n".join(lines) + "\n"


def table_rows(text: str) -> list[str]:
    """The result lines of an existing BENCHMARKS.md (after the header of the results table)."""
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if line.startswith("| section |")), len(lines))
    return [line for line in lines[start + 2 :] if line.startswith("| ")]


def merged(old_lines: list[str], rows: list[Row]) -> list[str]:
    """``old_lines`` with the rows of the same section and name replaced by ``rows``; new ones after their section."""

    def key(line: str) -> tuple[str, str]:
        section, name = line.removeprefix("| ").split(" | ")[:2]
        return section, name

    new = {(r.section, r.name): r.table_line() for r in rows}
    out = [new.pop(key(line), line) for line in old_lines]
    for (section, _), line in new.items():
        last = max((n for n, old in enumerate(out) if key(old)[0] == section), default=len(out) - 1)
        out.insert(last + 1, line)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument(
        "--only",
        help=f"comma-separated sections ({', '.join(PARTIAL_SECTIONS)}): measure just those and replace their "
        "rows in BENCHMARKS.md",
    )
    parser.add_argument("--decode-variants", help="comma-separated variants of the decode section (default: all)")
    parser.add_argument("--questions", type=int, default=100, help="questions of the evaluation sections")
    parser.add_argument("--note", default="", help="--only: said in every re-measured row (what else ran)")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    if args.only:
        unknown = sorted(set(args.only.split(",")) - set(PARTIAL_SECTIONS))
        if unknown:
            parser.error(
                f"--only: no section {', '.join(map(repr, unknown))}; choose among {', '.join(PARTIAL_SECTIONS)}"
            )
        decode = tuple(args.decode_variants.split(",")) if args.decode_variants else DECODE_VARIANTS
        partial(args.only.split(","), Partial(args.repeats, args.questions, args.note), args.output, decode)
        return
    rows = run_inference(args.repeats) + mixed_batch_rows(args.repeats)
    rows += evaluation_rows(args.questions)
    if not args.skip_training:
        rows += training_rows(args.train_steps)
    if not args.skip_load:
        rows += app_rows(args.repeats + 1, single_stream(rows)) + load_rows() + concurrency_rows(args.repeats)
    rows += rating_rows()
    for row in rows:
        print(f"{row.section:13} {row.name:45} {row.value:24} {row.detail}")
    args.output.write_text(markdown(rows, "make bench"), encoding="utf-8")
    print(f"wrote {args.output}")


@dataclasses.dataclass(frozen=True)
class Partial:
    """What a ``--only`` run measures with, and the note its rows carry."""

    repeats: int
    questions: int  # the loglik section's
    note: str = ""  # what else ran on the machine, said in every row


def partial(sections: list[str], run: Partial, output: Path, decode_variants: tuple[str, ...]) -> None:
    """Re-measure some sections in one run and put their rows into the existing file, saying which and when."""
    from benchmarks import visitors

    repeats = run.repeats
    inference = tuple(s for s in sections if s not in APART)
    rows = run_inference(repeats, inference, decode_variants) if inference else []
    if "mixed batch" in sections:
        rows += mixed_batch_rows(repeats)
    if "visitors" in sections:
        rows += visitors.rows(repeats, single_stream(rows))
    if "concurrency" in sections:
        rows += concurrency_rows(repeats)
    if "loglik" in sections:
        rows += loglik_rows(run.questions)
    for row in rows:
        print(f"{row.section:13} {row.name:45} {row.value:24} {row.detail}")
    command = f"python -m benchmarks --only '{','.join(sections)}' --repeats {repeats}"
    if decode_variants != DECODE_VARIANTS and "decode" in sections:
        command += f" --decode-variants {','.join(decode_variants)}"
    if "loglik" in sections:
        command += f" --questions {run.questions}"
    today = datetime.date.today().isoformat()
    note = f"; {run.note}" if run.note else ""
    rows = [dataclasses.replace(row, detail=f"{row.detail}; measured {today}{note}", command=command) for row in rows]
    provenance = (
        "Rows reproduced by a `python -m benchmarks --only ...` command come from one run of that command on the "
        "date their detail gives (each run measures its own llama.cpp anchor: ratios within one run); the other "
        "rows from the last full `make bench` or as their detail says. Timings are medians."
    )
    earlier = output.read_text(encoding="utf-8") if output.is_file() else ""  # a new file starts with these rows
    lines = merged(table_rows(earlier), rows)
    output.write_text(markdown(lines, "make bench", provenance), encoding="utf-8")
    print(f"updated {output}")


if __name__ == "__main__":
    main()
