"""The ``eval`` and ``perplexity`` commands of ``python -m medalpaca_core`` (registered in ``cli.py``).

They only parse arguments, show a progress bar and print; everything else is in the modules
the app's Evaluate tab calls too, so the command line and the app give the same numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from ..engine import Studio
from ..generation.settings import PRESETS
from ..text.grounding import Grounding, ground
from ..text.plural import counted
from ..text.records import QAPair
from .answers import AnswersConfig, answer_quality, answers_table
from .exams import BUNDLED_EXAM, Exam
from .generate import EVAL_NEW_TOKENS, RETRY_MIN_TOKENS, RETRY_SAMPLING, GenerateConfig
from .loading import folder_files, load_exam
from .loglik import CHOICES
from .perplexity import Loss, load_pairs, variant_loss
from .prompt import PROMPT_STYLES
from .runner import MODES, EvalConfig, run_evaluation
from .shots import ShotPool, load_pool
from .suite import BUNDLED_SUITE, SUITES, load_suite


class _Bar:
    """A tqdm bar driven by the (done, total, description) callbacks of the runners."""

    def __init__(self, unit: str):
        self.unit = unit
        self.bar = None

    def __call__(self, done: int, total: int, description: str) -> None:
        from tqdm.auto import tqdm

        if self.bar is None or self.bar.total != total:
            self.close()
            self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr)
        self.bar.set_description(description)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", action="append", required=True, help="variant id (repeatable)")
    parser.add_argument(
        "--exam", default=str(BUNDLED_EXAM), help="stepN.json folder or file, or a .jsonl (default: the sample exam)"
    )
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--limit", type=int, help="only the first N questions of every step")
    parser.add_argument("--output", help="results folder (default: one per exam under MEDALPACA_HOME)")
    parser.add_argument("--choice", choices=CHOICES, default="letter", help="loglik: score letters or option texts")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="greedy", help="generate: first attempt")
    parser.add_argument("--max-new-tokens", type=int, default=EVAL_NEW_TOKENS, help="generate: tokens per answer")
    parser.add_argument("--seed", type=int, default=0, help="generate: seed of sampled attempts")
    parser.add_argument("--suite", choices=SUITES, help="run every benchmark file found in --data-dir as one task each")
    parser.add_argument("--data-dir", default=str(BUNDLED_SUITE), help="--suite: the folder of benchmark files")
    parser.add_argument("--prompt", choices=PROMPT_STYLES, default="paper", help="the paper's prompt or the harness's")
    parser.add_argument("--shots", type=int, default=0, help="few-shot examples before each question")
    parser.add_argument("--shots-from", action="append", help="few-shot pool file (default: *_dev/_train files)")
    parser.add_argument("--rotate", action="store_true", help="loglik: also ask with options rotated (position bias)")


def exam_and_pool(args: argparse.Namespace) -> tuple[Exam, ShotPool]:
    """The exam (or the suite's tasks) and the few-shot pool: --shots-from, else the *_dev/_train files found."""
    if args.suite:
        exam, pool = load_suite(args.data_dir, args.suite)
    else:
        exam = load_exam(args.exam)
        folder = Path(args.exam).expanduser()
        pool = load_pool(folder_files(folder if folder.is_dir() else folder.parent)[2])
    return exam, (load_pool(args.shots_from, any_task=True) if args.shots_from else pool)


def cmd_eval(args: argparse.Namespace) -> int:
    tokens = args.max_new_tokens
    generate = GenerateConfig(
        first=replace(PRESETS[args.preset], max_new_tokens=tokens),
        retry=replace(RETRY_SAMPLING, max_new_tokens=tokens, min_new_tokens=min(RETRY_MIN_TOKENS, tokens)),
        seed=args.seed,
    )
    modes = MODES if args.mode == "both" else (args.mode,)
    if args.prompt == "harness" and args.mode == "both":
        modes = ("loglik",)  # the harness scores by log-likelihood only
    exam, pool = exam_and_pool(args)
    config = EvalConfig(
        modes=modes,
        limit=args.limit,
        choice=args.choice,
        generate=generate,
        prompt=args.prompt,
        shots=args.shots,
        pool=pool,
        rotate=args.rotate,
    )
    bar = _Bar("question")
    try:
        outcome = run_evaluation(Studio(), args.variant, exam, args.output, config, bar)
    finally:
        bar.close()
    print((outcome.folder / "results.md").read_text(encoding="utf-8"))
    for mode, seconds in outcome.seconds.items():
        print(f"[{mode}] {seconds:.0f} s", file=sys.stderr)
    for name, path in outcome.files.items():
        print(f"{name}: {path}", file=sys.stderr)
    for run, message in outcome.errors.items():
        print(f"[{run}] incomplete: {message}", file=sys.stderr)
    return 1 if outcome.errors else 0


def add_heldout_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``perplexity`` and ``answers`` share: the variants and the held-out records."""
    parser.add_argument("--variant", action="append", required=True, help="variant id (repeatable)")
    parser.add_argument("--data", required=True, help="Medical Meadow-format JSON list or JSONL")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N records")
    parser.add_argument("--limit", type=int, help="use at most N records")
    parser.add_argument("--batch-size", type=int, default=4, help="records per teacher-forced forward pass")
    parser.add_argument("--skip-malformed", action="store_true", help="skip malformed records instead of stopping")


def add_perplexity_arguments(parser: argparse.ArgumentParser) -> None:
    add_heldout_arguments(parser)
    parser.add_argument("--max-answer-tokens", type=int, default=256)
    context = parser.add_argument_group(
        "context mode", "also score every answer with a RAFT context: its own passage among distractor passages"
    )
    context.add_argument("--with-context", action="store_true", help="add the with-context loss column")
    context.add_argument("--distractors", type=int, default=2, help="distractor passages per context (k)")
    context.add_argument(
        "--passage-chars", type=int, default=1000, help="passages are cut to whole sentences within this many chars"
    )
    context.add_argument("--context-seed", type=int, default=42, help="seed of the distractor draw")


def _loss_row(studio: Studio, variant_id: str, pairs: list[QAPair], args: argparse.Namespace) -> Loss:
    bar = _Bar("pair")
    try:
        loss = variant_loss(studio, variant_id, pairs, args.max_answer_tokens, args.batch_size, bar)
    finally:
        bar.close()
    if loss.skipped:
        print(f"[{variant_id}] {counted(loss.skipped, 'pair')} did not fit the context window", file=sys.stderr)
    return loss


def cmd_perplexity(args: argparse.Namespace) -> int:
    pairs = load_pairs(args.data, args.skip, args.limit, args.skip_malformed)
    grounded = None
    if args.with_context:
        grounded = ground(pairs, Grounding(1.0, args.distractors, 0.0, args.passage_chars, args.context_seed))
    studio = Studio()
    header = "| variant | pairs | answer tokens | mean loss (nats/token) | perplexity |"
    print(header + (" loss with context | with / without |" if grounded else ""))
    print("|---" * (7 if grounded else 5) + "|")
    for variant_id in dict.fromkeys(args.variant):
        loss = _loss_row(studio, variant_id, pairs, args)
        row = f"| {variant_id} | {loss.pairs} | {loss.tokens} | {loss.mean_loss:.4f} | {loss.perplexity:.2f} |"
        if grounded:
            with_context = _loss_row(studio, variant_id, grounded, args)
            row += f" {with_context.mean_loss:.4f} | {with_context.mean_loss / loss.mean_loss:.3f} |"
        print(row)
    return 0


def add_answers_arguments(parser: argparse.ArgumentParser) -> None:
    add_heldout_arguments(parser)
    defaults = AnswersConfig()
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens, help="token limit per answer")
    parser.add_argument(
        "--min-words", type=int, default=defaults.min_words, help="shortest sentence whose repetition counts"
    )
    parser.add_argument(
        "--eos-cutoff",
        type=int,
        default=defaults.eos_cutoff,
        help="P(EOS) after gold answers whose prompt, answer and EOS fit this many tokens (fine-tuning's cutoff)",
    )
    parser.add_argument("--output", help="also write every answer and its verdicts to this JSON file")


def cmd_answers(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    pairs = load_pairs(args.data, args.skip, args.limit, args.skip_malformed)
    config = AnswersConfig(args.max_new_tokens, args.min_words, args.eos_cutoff, args.batch_size)
    bar = _Bar("question")
    try:
        report = answer_quality(Studio(), args.variant, pairs, config, bar)
    finally:
        bar.close()
    print(answers_table(report, config))
    if args.output:
        detail = {variant_id: [asdict(answer) for answer in row.answers] for variant_id, row in report.items()}
        Path(args.output).expanduser().write_text(json.dumps(detail, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"every answer: {args.output}", file=sys.stderr)
    failed = {variant_id: row for variant_id, row in report.items() if len(row.answered) < len(row.answers)}
    for variant_id, row in failed.items():
        first = next(answer.error for answer in row.answers if answer.error)
        failures = counted(len(row.answers) - len(row.answered), "answer")
        print(f"[{variant_id}] {failures} failed, e.g.: {first}", file=sys.stderr)
    return 1 if failed else 0
