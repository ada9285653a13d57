"""``generate`` mode, the paper's: let every variant answer, read the letter, retry when unreadable.

All variants are asked through ``Studio.stream_requests``, so variants that share a base are
answered in one batched ``generate`` exactly as in the app. A response whose start is not an
option letter is asked again with sampling (at most ``retries`` times, as medAlpaca's
``eval_usmle.py`` did) and counts as wrong if it never becomes readable.

The letter is decided by the first few characters, so the default of 32 new tokens gives the
same scores as the paper's 128 at a quarter of the time; ``max_new_tokens`` restores 128 for
fully comparable transcripts. The first attempt is greedy by default (reproducible); the paper
sampled every attempt (temperature 0.4, top_p 0.9, top_k 50), which ``first=PRESETS["sampling"]``
reproduces. Retries sample with at least 2 new tokens (see ``RETRY_SAMPLING``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..engine import Request, Studio
from ..generation.answers import FinishReason, Status, Unaskable
from ..generation.settings import PRESETS, GenerationSettings
from ..text.prompts import OPERATOR_LIMITS, PromptError, render
from .exams import Question
from .prompt import exam_parts
from .results import new_record
from .scoring import parse_letter

MAX_RETRIES = 5
EVAL_NEW_TOKENS = 32
GREEDY = GenerationSettings(max_new_tokens=EVAL_NEW_TOKENS)
# Retries may not end before they have said something: fine-tuned adapters trained to end every
# answer with EOS often end right after the "The Answer to the question is:" priming, and a retry
# that repeats that empty answer five times tells nothing. (The first attempt stays the paper's.)
RETRY_MIN_TOKENS = 2
RETRY_SAMPLING = replace(PRESETS["sampling"], max_new_tokens=EVAL_NEW_TOKENS, min_new_tokens=RETRY_MIN_TOKENS)


@dataclass(frozen=True)
class GenerateConfig:
    first: GenerationSettings = GREEDY
    retry: GenerationSettings = RETRY_SAMPLING
    retries: int = MAX_RETRIES
    seed: int = 0  # attempt k samples with seed + k

    def attempt_settings(self, attempt: int) -> GenerationSettings:
        settings = self.first if attempt == 0 else self.retry
        return replace(settings, seed=self.seed + attempt) if settings.do_sample else settings

    def as_dict(self) -> dict[str, Any]:
        """What a resumed run must share with the finished part (stored with the results).

        Decoding settings are stored as their differences from ``GenerationSettings()``, so that a
        setting added to it later (with a default that changes nothing) does not make older
        results look as if they had been made differently.
        """
        first, retry = _changed(self.first), _changed(self.retry)
        return {"first": first, "retry": retry, "retries": self.retries, "seed": self.seed}


def _changed(settings: GenerationSettings) -> dict[str, Any]:
    defaults = asdict(GenerationSettings())
    return {name: value for name, value in asdict(settings).items() if value != defaults[name]}


def _final_answers(studio: Studio, requests: list[Request], settings: GenerationSettings, cancel: Any) -> dict:
    return deque(studio.stream_requests(requests, settings, cancel), maxlen=1)[0]


def generate_records(
    studio: Studio,
    question: Question,
    variant_ids: list[str],
    config: GenerateConfig,
    cancel: threading.Event | None = None,
    shots: tuple[Question, ...] = (),
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each variant's record for ``question``, and the variants that failed (id -> error)."""
    parts = exam_parts(question, shots)
    responses: dict[str, list[str]] = {variant_id: [] for variant_id in variant_ids}
    errors: dict[str, str] = {}
    pending = list(variant_ids)
    for attempt in range(config.retries + 1):
        requests = [Request(v, parts, limits=OPERATOR_LIMITS) for v in pending]  # the exam's questions, uncapped
        try:
            answers = _final_answers(studio, requests, config.attempt_settings(attempt), cancel)
        except PromptError as error:  # this question cannot be asked (empty, say): skipped, the run goes on
            errors.update(dict.fromkeys(pending, Unaskable(error)))
            break
        for variant_id in pending:
            answer = answers[variant_id]
            if (
                answer.status == Status.ERROR
                or answer.stats is None
                or answer.stats.finish_reason == FinishReason.CANCELLED
            ):
                errors[variant_id] = answer.error or "generation was cancelled"
            else:
                responses[variant_id].append(answer.text)
        pending = [v for v in pending if v not in errors and parse_letter(responses[v][-1], question.options) is None]
        if not pending:
            break
    records = {}
    for variant_id, attempts in responses.items():
        if variant_id in errors:
            continue
        variant = studio.variant(variant_id)
        loaded, _ = studio.acquire(variant)
        prompt = render(variant.template, parts, loaded.tokenizer)
        parsed = parse_letter(attempts[-1], question.options)
        records[variant_id] = new_record(question, prompt, attempts[-1], parsed, attempts=attempts)
    return records, errors
