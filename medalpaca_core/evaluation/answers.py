"""The answers' side of held-out quality: do a variant's answers end, and do they loop?

The held-out loss (``perplexity``) says how well a variant predicts gold answers; it says nothing
about what a visitor sees. Issue 26's adapters had a better loss than their base and yet never
stopped: they repeated a sentence until the token limit. This report asks every held-out question
of every variant the way the Compare tab does (``Studio.stream_requests``, the variant's template,
greedy, no repetition guard, so nothing hides a model that cannot stop) and counts, per variant:

- answers that ended by themselves with the end-of-sequence token within ``max_new_tokens``
  (a template marker, the model starting a new "Question:", is counted apart: the studio cuts
  there, but the model did not stop);
- answers that repeat a sentence or loop on a phrase (``repetition.repetition``);
- the mean answer length in tokens beside the gold answers' (cut at the same limit, since an
  answer cannot be longer);
- the teacher-forced probability of stopping right after the gold answer (``eos``), over the
  pairs that fit fine-tuning's cutoff with their EOS.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..engine import Request, Studio
from ..generation.answers import Answer, FinishReason
from ..generation.settings import PRESETS
from ..text.prompts import OPERATOR_LIMITS
from ..text.records import QAPair
from .eos import eos_probabilities
from .repetition import MIN_WORDS, repetition

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class AnswersConfig:
    """How the answers are produced and judged; the defaults are issue 26's measurement."""

    max_new_tokens: int = 256
    min_words: int = MIN_WORDS  # shortest sentence whose repetition counts
    eos_cutoff: int = 256  # P(EOS) only where prompt, gold answer and EOS fit: fine-tuning's cutoff
    batch_size: int = 4  # pairs per teacher-forced forward pass

    def checked(self) -> AnswersConfig:
        for name in ("max_new_tokens", "min_words", "eos_cutoff", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        return self


@dataclass(frozen=True)
class JudgedAnswer:
    """One variant's answer to one held-out question, and what the report makes of it."""

    question: str
    text: str
    finish_reason: str  # a FinishReason, "" when the answer failed
    new_tokens: int
    gold_tokens: int  # the gold answer's length, cut at max_new_tokens
    repeated: str | None  # the sentence said twice, if any
    eos_probability: float | None  # None: prompt, gold answer and EOS do not fit eos_cutoff
    error: str | None = None


@dataclass
class AnswerQuality:
    """The report's row for one variant."""

    variant_id: str
    answers: list[JudgedAnswer] = field(default_factory=list)

    @property
    def answered(self) -> list[JudgedAnswer]:
        return [answer for answer in self.answers if answer.error is None]

    def share(self, test: Callable[[JudgedAnswer], bool]) -> float:
        answered = self.answered
        return sum(map(test, answered)) / len(answered) if answered else float("nan")

    @property
    def natural_stops(self) -> float:
        return self.share(lambda answer: answer.finish_reason == FinishReason.EOS)

    @property
    def marker_stops(self) -> float:
        return self.share(lambda answer: answer.finish_reason == FinishReason.STOP)

    @property
    def repeating(self) -> float:
        return self.share(lambda answer: answer.repeated is not None)

    @property
    def mean_tokens(self) -> float:
        return _mean([answer.new_tokens for answer in self.answered])

    @property
    def gold_mean_tokens(self) -> float:
        return _mean([answer.gold_tokens for answer in self.answered])

    @property
    def eos_probabilities(self) -> list[float]:
        return [answer.eos_probability for answer in self.answers if answer.eos_probability is not None]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def final_answers(studio: Studio, variant_ids: list[str], pair: QAPair, config: AnswersConfig) -> dict[str, Answer]:
    """Every variant's finished answer to ``pair``'s question: greedy, no guard, variants on one base batched."""
    settings = replace(PRESETS["greedy"], max_new_tokens=config.max_new_tokens, repetition_penalty=1.0)
    requests = [Request(variant_id, pair.parts(), limits=OPERATOR_LIMITS) for variant_id in variant_ids]
    return deque(studio.stream_requests(requests, settings), maxlen=1)[0]


def judge(answer: Answer, pair: QAPair, gold_tokens: int, eos: float | None, config: AnswersConfig) -> JudgedAnswer:
    if answer.error or answer.stats is None:
        return JudgedAnswer(pair.input, answer.text, "", 0, gold_tokens, None, eos, answer.error or "no answer")
    repeated = repetition(answer.text, config.min_words)
    return JudgedAnswer(
        pair.input, answer.text, answer.stats.finish_reason, answer.stats.new_tokens, gold_tokens, repeated, eos
    )


def gold_lengths(studio: Studio, variant_id: str, pairs: list[QAPair], limit: int) -> list[int]:
    """The gold answers' lengths in the variant's tokens, each cut at ``limit``."""
    tokenizer = studio.acquire(studio.variant(variant_id))[0].tokenizer
    return [min(limit, len(tokenizer(pair.output, add_special_tokens=False)["input_ids"])) for pair in pairs]


def answer_quality(
    studio: Studio,
    variant_ids: list[str],
    pairs: list[QAPair],
    config: AnswersConfig = AnswersConfig(),
    progress: Progress | None = None,
) -> dict[str, AnswerQuality]:
    """Ask every question of every variant and judge the answers; teacher-forced first (a variant that
    cannot load fails here, before minutes of generation)."""
    config = config.checked()
    variant_ids = list(dict.fromkeys(variant_ids))
    eos = {v: eos_probabilities(studio, v, pairs, config.eos_cutoff, config.batch_size) for v in variant_ids}
    gold = {v: gold_lengths(studio, v, pairs, config.max_new_tokens) for v in variant_ids}
    report = {variant_id: AnswerQuality(variant_id) for variant_id in variant_ids}
    for index, pair in enumerate(pairs):
        for variant_id, answer in final_answers(studio, variant_ids, pair, config).items():
            judged = judge(answer, pair, gold[variant_id][index], eos[variant_id][index], config)
            report[variant_id].answers.append(judged)
        if progress is not None:
            progress(index + 1, len(pairs), "answers")
    return report


def _count(row: AnswerQuality, share: float) -> str:
    answered = len(row.answered)
    return f"{round(share * answered)} of {answered} ({share:.0%})" if answered else "-"


def answers_table(report: dict[str, AnswerQuality], config: AnswersConfig) -> str:
    """The report as a Markdown table, one row per variant."""
    limit = config.max_new_tokens
    lines = [
        f"| variant | questions | ended by EOS within {limit} tokens | ended at a template marker "
        f"| repeat a sentence (>= {config.min_words} words) or loop | mean tokens | gold mean tokens (cut at {limit}) "
        f"| P(EOS) after the gold answer (those within {config.eos_cutoff} tokens) |",
        "|---" * 8 + "|",
    ]
    for variant_id, row in report.items():
        probabilities = row.eos_probabilities
        lines.append(
            f"| {variant_id} | {len(row.answers)} | {_count(row, row.natural_stops)} | {_count(row, row.marker_stops)} "
            f"| {_count(row, row.repeating)} | {row.mean_tokens:.0f} | {row.gold_mean_tokens:.0f} "
            f"| {_mean(probabilities):.3f} ({len(probabilities)}) |"
        )
    return "\n".join(lines)
