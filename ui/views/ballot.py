"""What each Compare column shows for a ballot: neutral while the names are sealed, everything once voted.

Blind mode is only as good as its weakest line of text: a column label, a status line with the
memory or the quantization, an error naming the variant, a "Loading …" line, an adapter's
departure line (which says that a column is an adapter) or a prompt view (which shows its
template) would each give the mapping away. So every line a column shows is made here, from the
ballot, and while ``ballot.sealed`` only neutral ones are: "Model B", the answer text, its token
count. Names, statistics, the prompt and the adapter line come with the vote (in an unblinded
comparison, when the answers end).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from medalpaca_core.arena.ballots import Ballot, column_label
from medalpaca_core.arena.notes import ColumnNotes
from medalpaca_core.arena.ratings import ALL_BAD, TIE
from medalpaca_core.arena.votes import answered
from medalpaca_core.generation.answers import Answer, FinishReason, Prompt, Status
from medalpaca_core.text.plural import counted

from .common import WAITING, answer_status, ending, literal_html

DRAW_CHOICES = [("Tie", TIE), ("All bad", ALL_BAD)]
SEALED_DONE = "{mark} {tokens} · {words}. Name, speed and memory are shown after your vote."
SEALED_ERROR = "⚠ This model could not answer; why is shown after your vote."


@dataclass(frozen=True)
class ColumnView:
    """One column as the page shows it now."""

    label: str
    text: str
    status: str
    notes: str = ""  # Markdown under the answer: who it was (blind, after the vote) and the adapter line
    prompt: Prompt | None = None
    chosen: bool = False  # the column the vote went to


def sealed_status(answer: Answer | None) -> str:
    """The line under a sealed column: progress and length only, nothing that tells variants apart."""
    if answer is None:
        return WAITING[Status.QUEUED]
    if answer.status == Status.ERROR:
        return SEALED_ERROR
    if answer.status == Status.DONE:
        mark, words = ending(answer.stats)  # a finished answer has its stats
        return SEALED_DONE.format(mark=mark, tokens=counted(answer.stats.new_tokens, "token"), words=words)
    return answer_status(answer)  # waiting, loading, "Generating… N tokens": the same for every variant


def column_view(
    ballot: Ballot,
    index: int,
    answer: Answer | None,
    label_of: Callable[[str], str],
    precision_of: Callable[[str], str] = lambda _: "",
) -> ColumnView:
    """Column ``index`` of ``ballot``; ``label_of`` gives a variant's registry label and ``precision_of`` how its
    weights are held ('bf16', 'int8', …), both shown only once it may be named."""
    ident, text = ballot.columns[index], answer.text if answer else ""
    if ballot.sealed:
        return ColumnView(column_label(index), text, sealed_status(answer))
    notes: ColumnNotes = ballot.details.get(ident, ColumnNotes())
    lines = []
    if ballot.blind:
        name = literal_html(label_of(ident))
        lines.append(f"**{column_label(index)} was {name}** (`{literal_html(ident)}`): see the **Models** tab.")
    if notes.change:
        lines.append(literal_html(notes.change))
    label = f"{column_label(index)}: {ident}" if ballot.blind else ident
    status = answer_status(answer, precision_of(ident)) if answer else "Ready."
    chosen = ballot.voted and ballot.winner == ident
    return ColumnView(label, text, status, "\n\n".join(lines), notes.prompt, chosen)


def run_line(ballot: Ballot, answers: dict[str, Answer], started: float) -> str:
    """One line above the columns: what is happening now, then how long the whole comparison took."""
    elapsed = time.perf_counter() - started
    states = [answers[ident].status if ident in answers else Status.QUEUED for ident in ballot.columns]
    loading = [n for n, state in enumerate(states) if state == Status.LOADING]
    if loading:
        names = [column_label(n) if ballot.sealed else ballot.columns[n] for n in loading]
        return f"Loading {literal_html(', '.join(names))}… ({elapsed:.0f} s)"
    if answers and all(answer.finished for answer in answers.values()):
        failed = sum(answer.status == Status.ERROR for answer in answers.values())
        note = f", {failed} failed" if failed else ""
        if any(stopped(answer) for answer in answers.values()):
            who = "your vote" if ballot.voted else "you"
            return f"Stopped by {who} after {elapsed:.1f} s: the answers are kept as far as they got{note}."
        return f"Finished {counted(len(answers), 'answer')} in {elapsed:.1f} s{note}."
    return f"Generating {counted(len(answers), 'answer')}… ({elapsed:.1f} s)"


def stopped(answer: Answer) -> bool:
    """Whether Stop (or a vote) ended this answer before the model did."""
    return answer.stats is not None and answer.stats.finish_reason == FinishReason.CANCELLED


def vote_choices(ballot: Ballot, answers: dict[str, Answer]) -> list[tuple[str, str]]:
    """(shown, sent) for every column with an answer to vote for, then tie and all bad."""
    shown = [ballot.label(n) for n, ident in enumerate(ballot.columns) if ident in answers and answered(answers[ident])]
    return [(label, label) for label in shown] + DRAW_CHOICES


def vote_message(ballot: Ballot) -> str:
    """What the vote area says: how to vote, or what the vote was."""
    if not ballot.voted:
        if ballot.blind:
            return "Which answer is best? The names are shown after your vote (voting stops what still runs)."
        return "Which answer is best? (Voting stops what still runs.)"
    if ballot.winner in (TIE, ALL_BAD):
        chosen = dict((value, shown) for shown, value in DRAW_CHOICES)[ballot.winner]
    else:
        index = ballot.columns.index(ballot.winner)
        chosen = f"{column_label(index)} ({ballot.winner})" if ballot.blind else ballot.winner
    kind = "blind vote" if ballot.blind else "vote with the names shown"
    return f"Your {kind}: **{literal_html(chosen)}**. Thank you!"
