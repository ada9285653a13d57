"""``python -m medalpaca_core leaderboard`` and ``export-votes``: ratings and the votes dataset from a terminal.

``leaderboard`` reads the app's votes database, or a JSON Lines file (``--votes``, the format of
``medalpaca_core.arena.votefile``, possibly merged from several deployments), and prints Bradley–Terry
ratings with 95% bootstrap intervals; ``--json`` prints them as a list for scripts. Blind votes
make the public leaderboard; ``--unblinded`` rates the others. Notes (skipped lines, variants
without opponents) go to stderr, so the JSON on stdout stays clean.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..text.plural import counted
from .leaderboard import text_table
from .ratings import FitSettings, leaderboard
from .votefile import VOTER_NOTE, read_jsonl, write_jsonl
from .votes import VoteStore, votes_of


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--votes", type=Path, help="a JSON Lines votes file (default: the app's votes database)")
    parser.add_argument("--json", action="store_true", help="print [{variant, rating, ci_low, ci_high, votes}]")
    parser.add_argument("--unblinded", action="store_true", help="rate the votes cast with names shown instead")
    parser.add_argument("--resamples", type=int, default=FitSettings.resamples, help="bootstrap resamples (>= 1)")
    parser.add_argument("--seed", type=int, default=FitSettings.seed, help="bootstrap seed")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, help="where to write the JSON Lines (default: stdout)")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    settings = FitSettings(resamples=args.resamples, seed=args.seed)
    blind = not args.unblinded
    if args.votes:
        source = read_jsonl(args.votes)
        votes, notes = source.selected(blind), source.notes()
    else:
        votes, notes = votes_of(VoteStore().records(), blind), []
    if not votes:
        kind = "unblinded" if args.unblinded else "blind"
        other = "" if args.unblinded else " (the unblinded ones: --unblinded)"
        notes.append(f"No {kind} votes to rate{other}.")
    board = leaderboard(votes, settings)
    for note in [*notes, *board.notes]:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps([rating.as_dict() for rating in board.ratings], indent=2))
    elif board.ratings:
        print(text_table(board))
    return 0 if board.ratings else 1


def cmd_export_votes(args: argparse.Namespace) -> int:
    records = VoteStore().records()
    if args.output:
        with args.output.open("w", encoding="utf-8") as stream:
            count = write_jsonl(records, stream)
    else:
        count = write_jsonl(records, sys.stdout)
    print(f"{counted(count, 'vote')} exported. {VOTER_NOTE}", file=sys.stderr)
    return 0
