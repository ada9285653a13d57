"""Command line: ``python -m medalpaca_core COMMAND …`` (``prepare``, ``list``, ``ask``, ``eval``, ``perplexity``,
``answers``, ``serve``, ``leaderboard``, ``export-votes``).

``prepare`` converts the embedded default model once; ``list`` shows every variant with its
availability and memory estimate; ``ask`` streams answers of one or more variants; ``eval``
scores variants on a USMLE-style exam, ``perplexity`` measures their held-out answer loss and
``answers`` whether their held-out answers end or loop (all three in ``medalpaca_core.evaluation.commands``);
``serve`` runs the OpenAI-compatible API without the web page; ``leaderboard`` rates variants from votes
and ``export-votes`` writes the votes as JSON Lines (both in ``medalpaca_core.arena.leaderboard_cli``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .arena.leaderboard_cli import add_export_arguments, add_leaderboard_arguments, cmd_export_votes, cmd_leaderboard
from .engine import Studio
from .evaluation.commands import (
    add_answers_arguments,
    add_eval_arguments,
    add_perplexity_arguments,
    cmd_answers,
    cmd_eval,
    cmd_perplexity,
)
from .generation.settings import KNOBS, PRESETS, GenerationSettings
from .models.default_model import resolve_default_model
from .models.memory import format_bytes
from .models.registry import availability


def cmd_prepare(args: argparse.Namespace) -> int:
    """Convert the default model's GGUF to the safetensors cache (idempotent)."""
    print(f"Default model ready at {resolve_default_model()}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    studio = Studio()
    rows = [("id", "kind", "template", "memory (est.)", "available")]
    for variant in studio.variants():
        status = availability(variant)
        needed = studio.estimate(variant)
        rows.append(
            (
                variant.id,
                variant.kind,
                variant.template,
                format_bytes(needed.bytes) if needed else "?",
                "yes" if status.ok else f"no: {status.reason}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def settings_from_args(args: argparse.Namespace) -> GenerationSettings:
    """The preset, with any setting given on the command line laid over it."""
    base = PRESETS[args.preset]
    names = [*(knob.name for knob in KNOBS), "repetition_penalty"]  # the CLI's own extra: never on the page or API
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return GenerationSettings(**{**base.__dict__, **overrides})


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="greedy")
    for knob in KNOBS:
        parser.add_argument(knob.option, type=knob.kind, help=f"{knob.label}; {knob.low:g}..{knob.high:g}")
    parser.add_argument(
        "--repetition-penalty",
        type=float,
        help="divide the scores of tokens already in the answer by this (1: off, the default; up to 2); a guard "
        "against looping that also hides a model that cannot stop, so evaluation never uses it",
    )


def cmd_ask(args: argparse.Namespace) -> int:
    studio = Studio()
    settings = settings_from_args(args)
    single = len(args.variant) == 1
    shown = 0
    answers = {}
    for answers in studio.stream(args.variant, args.question, args.context, settings):
        if single:  # one variant: stream its tokens to the terminal as they come
            text = answers[args.variant[0]].text
            print(text[shown:], end="", flush=True)
            shown = len(text)
    if single:
        print()
    failed = 0
    for variant_id, answer in answers.items():
        if not single:
            print(f"=== {variant_id}\n{answer.text}")
        if answer.error:
            failed += 1
            print(f"[{variant_id}] error: {answer.error}", file=sys.stderr)
        elif answer.stats:
            print(f"[{variant_id}] {answer.stats.summary()}", file=sys.stderr)
    return 1 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The OpenAI-compatible API alone (no web page), on the same studio, limits and key as the app's."""
    import uvicorn

    from .serving.openai_api import ApiConfig, create_app
    from .serving.ratelimit import RateLimiter

    api = create_app(Studio(), RateLimiter.from_env(), ApiConfig.from_env())
    # proxy_headers off: the studio decides whom to trust for the rate limit (MEDALPACA_TRUSTED_PROXY)
    uvicorn.run(api, host=args.host, port=args.port, proxy_headers=False, log_level="warning")
    return 0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the network)")
    parser.add_argument("--port", type=int, default=8000)


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "prepare": (cmd_prepare, "convert the embedded default model to the safetensors cache"),
    "list": (cmd_list, "list variants, availability and memory estimates"),
    "ask": (cmd_ask, "ask one or more variants a question"),
    "eval": (cmd_eval, "zero-shot accuracy on a USMLE-style exam (generate and loglik modes)"),
    "perplexity": (cmd_perplexity, "held-out answer loss and perplexity on Medical Meadow-format Q&A"),
    "answers": (cmd_answers, "held-out answers: natural stops, repeated sentences, lengths, P(EOS) after gold"),
    "serve": (cmd_serve, "the OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions) alone"),
    "leaderboard": (cmd_leaderboard, "Bradley–Terry ratings with 95% intervals from the votes (blind ones by default)"),
    "export-votes": (cmd_export_votes, "every vote as JSON Lines (nothing about the voter is stored)"),
}
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "eval": add_eval_arguments,
    "perplexity": add_perplexity_arguments,
    "answers": add_answers_arguments,
    "serve": add_serve_arguments,
    "leaderboard": add_leaderboard_arguments,
    "export-votes": add_export_arguments,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medalpaca_core", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log loading details")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name == "ask":
            sub.add_argument("question")
            sub.add_argument("--variant", action="append", required=True, help="variant id (repeatable)")
            sub.add_argument("--context", default="")
            add_settings_arguments(sub)
        if name in ARGUMENTS:
            ARGUMENTS[name](sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return COMMANDS[args.command][0](args)
    except (ValueError, KeyError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
