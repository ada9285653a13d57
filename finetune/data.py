"""Medical Meadow records -> token sequences, through the same prompt builder that inference uses.

Records are read by ``medalpaca_core.text.records`` (the reader evaluation uses too). Every example is
``render(template, record.parts())`` + output + EOS, tokenized as the app tokenizes a prompt and then
the answer it generates, so training and inference see the very same token boundaries. With
``train_on_inputs`` off the prompt tokens are labelled -100; padding is always -100, by position rather
than by token id, because this tokenizer's pad token *is* its EOS token and the EOS that ends an answer
must be learnt. A share of the training records can get a RAFT context (``medalpaca_core.text.grounding``).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medalpaca_core.text.grounding import GroundingError, ground
from medalpaca_core.text.prompts import encode, render
from medalpaca_core.text.records import QAPair, RecordError, Source, load_records

from .config import DataConfig
from .cure import cure_questions

log = logging.getLogger(__name__)
IGNORE_INDEX = -100  # what torch's cross-entropy skips
DataError = RecordError  # finetune's data errors are the reader's: one message style for both


@dataclass
class PreparedData:
    """Tokenized train and validation examples, and what happened on the way."""

    train: list[dict[str, list[int]]]
    validation: list[dict[str, list[int]]]
    sources: list[Source]
    used: dict[str, int]  # records taken from each source, after its cap
    problems: list[str] = field(default_factory=list)  # the malformed records skipped, one line each
    too_long: int = 0  # examples dropped because the prompt alone fills the cutoff
    grounded: int = 0  # training examples that kept a RAFT context
    ungrounded: int = 0  # chosen for a context, kept without one: with it the answer would not fit the cutoff
    cure_questions: int = 0  # training records derived by finetune/cure.py (copies included)

    def summary(self) -> str:
        taken = ", ".join(f"{count:,} from {name}" for name, count in self.used.items())
        text = f"{len(self.train):,} training and {len(self.validation):,} validation examples ({taken})"
        if self.cure_questions:
            text += f", {self.cure_questions:,} of them cure questions derived from training answers"
        if self.grounded or self.ungrounded:
            text += f"; {self.grounded:,} training examples with a context"
        if self.ungrounded:
            text += f" ({self.ungrounded:,} more kept without one: their answer would not fit the cutoff)"
        if self.problems:
            text += f"; {len(self.problems)} malformed records skipped"
        if self.too_long:
            text += f"; {self.too_long} dropped because the prompt alone fills the cutoff"
        return text


def split(records: list[QAPair], fraction: float, seed: int) -> tuple[list[QAPair], list[QAPair]]:
    """Hold out ``fraction`` of the distinct questions (seeded), so a repeated question never
    lands on both sides and inflates the validation score."""
    questions = list(dict.fromkeys((r.instruction, r.input) for r in records))
    if len(questions) < 2:
        raise DataError("At least two distinct questions are needed to hold some out for validation")
    random.Random(seed).shuffle(questions)
    held_out = set(questions[: min(len(questions) - 1, max(1, round(len(questions) * fraction)))])
    train = [r for r in records if (r.instruction, r.input) not in held_out]
    validation = [r for r in records if (r.instruction, r.input) in held_out]
    return train, validation


def encode_example(
    record: QAPair, tokenizer: Any, template: str, cutoff: int, train_on_inputs: bool
) -> dict[str, list[int]] | None:
    """Token ids and labels of one record, or None when the prompt alone fills the cutoff."""
    prompt = render(template, record.parts(), tokenizer)
    prompt_ids = encode(template, prompt, tokenizer)
    answer_ids = [*tokenizer(record.output, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    ids = (prompt_ids + answer_ids)[:cutoff]  # a cut answer loses its EOS: it must not learn to stop there
    if len(prompt_ids) >= len(ids) and not train_on_inputs:
        return None
    masked = len(ids) if train_on_inputs else len(prompt_ids)
    labels = ids if train_on_inputs else [IGNORE_INDEX] * masked + ids[masked:]
    return {"input_ids": ids, "labels": list(labels)}


def encode_grounded(record: QAPair, tokenizer: Any, config: DataConfig) -> tuple[dict[str, list[int]] | None, bool]:
    """A record with a context, or without it when the context would cut its answer.

    A context only ever costs prompt room: if the whole answer (and its EOS) no longer fits the
    cutoff, the record is used as it was, and the second value says the context was dropped.
    """
    example = encode_example(record, tokenizer, config.template, config.cutoff, config.train_on_inputs)
    if not record.context or (example is not None and example["input_ids"][-1] == tokenizer.eos_token_id):
        return example, False
    plain = QAPair(record.instruction, record.input, record.output)
    return encode_example(plain, tokenizer, config.template, config.cutoff, config.train_on_inputs), True


def prepare(config: DataConfig, tokenizer: Any) -> PreparedData:
    """Read, check, mix, split, ground and tokenize; validation is sorted by length so evaluation pads little.

    Only training records get contexts: the validation split stays in the paper's format, so its loss
    stays comparable across runs (the perplexity report measures the with-context loss separately).
    """
    sources = [Source.parse(spec) for spec in config.sources]
    read = load_records(sources, config.split_seed, config.skip_malformed)
    train_records, val_records = split(read.pairs, config.val_fraction, config.split_seed)
    derived = cure_questions(train_records, config.cure_questions)
    if config.cure_questions and not derived:
        log.warning(
            "--cure-questions %d added nothing: no training answer under a WikiDoc-style question says whether "
            "its condition can be cured, and none is a WikiDoc outlook (finetune/cure.py)",
            config.cure_questions,
        )
    train_records += derived
    try:
        train_records = ground(train_records, config.grounding())
    except GroundingError as error:
        raise DataError(f"Cannot build contexts from {len(train_records)} training records: {error}") from None
    encoded = [encode_grounded(record, tokenizer, config) for record in train_records]
    train = [example for example, _ in encoded if example is not None]
    grounded = sum(
        1
        for record, (example, dropped) in zip(train_records, encoded, strict=True)
        if record.context and example is not None and not dropped
    )
    ungrounded = sum(1 for _, dropped in encoded if dropped)
    validation = [
        example
        for record in val_records
        if (example := encode_example(record, tokenizer, config.template, config.cutoff, config.train_on_inputs))
    ]
    too_long = len(train_records) + len(val_records) - len(train) - len(validation)
    if not train or not validation:
        raise DataError(f"Every prompt fills the cutoff of {config.cutoff} tokens: raise --cutoff")
    validation.sort(key=lambda example: len(example["input_ids"]))
    return PreparedData(
        train, validation, sources, read.used, read.problems, too_long, grounded, ungrounded, len(derived)
    )


def write_validation(config: DataConfig, path: str | Path) -> int:
    """Write the held-out split of ``config`` as Medical Meadow records; return how many.

    The split is by question and seeded, so this is exactly the set a run validates on, and the
    perplexity report can score every variant on records none of them trained on.
    """
    read = load_records([Source.parse(spec) for spec in config.sources], config.split_seed, config.skip_malformed)
    _, validation = split(read.pairs, config.val_fraction, config.split_seed)
    records = [{"instruction": r.instruction, "input": r.input, "output": r.output} for r in validation]
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return len(records)


@dataclass(frozen=True)
class Collator:
    """Pads a batch on the right; padded positions get attention 0 and label -100."""

    pad_id: int

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)

        def padded(key: str, fill: int) -> Any:
            return torch.tensor([f[key] + [fill] * (width - len(f[key])) for f in features])

        mask = [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]
        return {
            "input_ids": padded("input_ids", self.pad_id),
            "attention_mask": torch.tensor(mask),
            "labels": padded("labels", IGNORE_INDEX),
        }
