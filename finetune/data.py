"""Medical Meadow records -> token sequences, through the same prompt builder that inference uses.

A record is ``{"instruction", "input", "output"}``. Every example is ``render(template, parts)`` +
output + EOS, tokenized as the app tokenizes a prompt and then the answer it generates, so training
and inference see the very same token boundaries. With ``train_on_inputs`` off the prompt tokens are
labelled -100; padding is always -100, by position rather than by token id, because this tokenizer's
pad token *is* its EOS token and the EOS that ends an answer must be learnt.
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medalpaca_core import hub
from medalpaca_core.engine import encode
from medalpaca_core.evaluation.perplexity import QAPair  # the {instruction, input, output} record
from medalpaca_core.prompts import DEFAULT_INSTRUCTION, PromptParts, render

from .config import DataConfig

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # what torch's cross-entropy skips
REQUIRED_TEXT = ("input", "output")
SHOWN_PROBLEMS = 20


class DataError(ValueError):
    """Data that cannot be read or used; the message names the source and, for records, the index."""


@dataclass(frozen=True)
class Source:
    """One ``--data`` spec: a JSON/JSONL file or a Hub dataset id, optionally capped at ``cap`` records."""

    location: str
    cap: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Source:
        match = re.fullmatch(r"(.+):(\d+)", spec.strip())
        location, cap = (match.group(1), int(match.group(2))) if match else (spec.strip(), None)
        if cap == 0:
            raise DataError(f"{spec}: a cap of 0 records leaves nothing to train on")
        return cls(location, cap)

    @property
    def name(self) -> str:
        """How the card names it: the dataset id, or the file name (paths are machine-specific)."""
        return self.location if self.is_hub else Path(self.location).name

    @property
    def is_hub(self) -> bool:
        return not Path(self.location).expanduser().exists() and hub.looks_like_hub_id(self.location)


@dataclass(frozen=True)
class Problem:
    """A malformed record: where it is and what is wrong with it."""

    source: str
    index: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}, record {self.index}: {self.reason}"


@dataclass
class PreparedData:
    """Tokenized train and validation examples, and what happened on the way."""

    train: list[dict[str, list[int]]]
    validation: list[dict[str, list[int]]]
    sources: list[Source]
    used: dict[str, int]  # records taken from each source, after its cap
    problems: list[Problem] = field(default_factory=list)
    too_long: int = 0  # examples dropped because the prompt alone fills the cutoff

    def summary(self) -> str:
        taken = ", ".join(f"{count:,} from {name}" for name, count in self.used.items())
        text = f"{len(self.train):,} training and {len(self.validation):,} validation examples ({taken})"
        if self.problems:
            text += f"; {len(self.problems)} malformed records skipped"
        if self.too_long:
            text += f"; {self.too_long} dropped because the prompt alone fills the cutoff"
        return text


@dataclass(frozen=True)
class Unparsed:
    """A JSONL line that is not JSON, kept in place so later records keep their index."""

    reason: str


def _read_file(path: Path) -> list[Any]:
    """Raw items of a JSON list or of a JSONL file (one record per non-blank line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"Cannot read {path}: {error}") from None
    if path.suffix == ".jsonl":
        items: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except ValueError as error:
                    items.append(Unparsed(f"line {number} is not JSON ({error})"))
        return items
    try:
        document = json.loads(text)
    except ValueError as error:
        raise DataError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(document, list):
        raise DataError(f"{path}: expected a JSON list of {{instruction, input, output}} records")
    return document


def _read_hub(dataset_id: str) -> list[Any]:
    try:
        import datasets

        return list(datasets.load_dataset(dataset_id, split="train"))
    except Exception as error:  # datasets raises many kinds (offline, not found, gated, bad script)
        offline = " (HF_HUB_OFFLINE is set)" if hub.offline_mode() else ""
        raise DataError(f"Cannot load the dataset {dataset_id} from the Hugging Face Hub{offline}: {error}") from None


def read_source(source: Source) -> list[Any]:
    """The raw items of one source, in order."""
    path = Path(source.location).expanduser()
    if path.is_file():
        if path.suffix not in (".json", ".jsonl"):
            raise DataError(f"{path}: only .json (a list of records) and .jsonl files are supported")
        return _read_file(path)
    if path.exists():
        raise DataError(f"{path} is a folder; pass a .json or .jsonl file")
    if source.is_hub:
        return _read_hub(source.location)
    raise DataError(f"{source.location}: no such file, and not a Hugging Face dataset id (owner/name)")


def check_record(item: Any) -> str | None:
    """Why ``item`` is not a usable record, or None. A missing instruction means the default one."""
    if isinstance(item, Unparsed):
        return item.reason
    if not isinstance(item, dict):
        return f"expected an object with instruction, input and output, got {type(item).__name__}"
    for key in REQUIRED_TEXT:
        if key not in item:
            return f"missing key {key!r}"
        if not isinstance(item[key], str):
            return f"{key!r} is {type(item[key]).__name__}, not text"
        if not item[key].strip():
            return f"{key!r} is empty"
    if not isinstance(item.get("instruction", ""), str | None):
        return f"'instruction' is {type(item['instruction']).__name__}, not text"
    return None


def problem_report(problems: list[Problem]) -> str:
    lines = [str(problem) for problem in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"... and {len(problems) - SHOWN_PROBLEMS} more")
    return f"{len(problems)} malformed records:\n  " + "\n  ".join(lines)


def load_records(
    sources: list[Source], seed: int, skip_malformed: bool
) -> tuple[list[QAPair], dict[str, int], list[Problem]]:
    """All sources mixed, each capped to a seeded random sample; malformed records stop the run.

    With ``skip_malformed`` they are left out and reported instead -- never dropped silently.
    """
    records: list[QAPair] = []
    used: dict[str, int] = {}
    problems: list[Problem] = []
    for source in sources:
        valid = []
        for index, item in enumerate(read_source(source)):
            reason = check_record(item)
            if reason is None:
                instruction = (item.get("instruction") or "").strip() or DEFAULT_INSTRUCTION
                valid.append(QAPair(instruction, item["input"].strip(), item["output"].strip()))
            else:
                problems.append(Problem(source.name, index, reason))
        if source.cap is not None and source.cap < len(valid):
            keep = sorted(random.Random(seed).sample(range(len(valid)), source.cap))
            valid = [valid[i] for i in keep]
        if not valid:
            raise DataError(f"{source.name} holds no usable records")
        used[source.name] = len(valid)
        records += valid
    if problems:
        report = problem_report(problems)
        if not skip_malformed:
            raise DataError(f"{report}\nFix them, or pass --skip-malformed to leave them out.")
        log.warning("Skipping %s", report)
    return records, used, problems


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
    prompt = render(template, PromptParts(question=record.input, instruction=record.instruction), tokenizer)
    prompt_ids = encode(template, prompt, tokenizer)
    answer_ids = [*tokenizer(record.output, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    ids = (prompt_ids + answer_ids)[:cutoff]  # a cut answer loses its EOS: it must not learn to stop there
    if len(prompt_ids) >= len(ids) and not train_on_inputs:
        return None
    masked = len(ids) if train_on_inputs else len(prompt_ids)
    labels = ids if train_on_inputs else [IGNORE_INDEX] * masked + ids[masked:]
    return {"input_ids": ids, "labels": list(labels)}


def prepare(config: DataConfig, tokenizer: Any) -> PreparedData:
    """Read, check, mix, split and tokenize; validation is sorted by length so evaluation pads little."""
    sources = [Source.parse(spec) for spec in config.sources]
    records, used, problems = load_records(sources, config.split_seed, config.skip_malformed)
    train_records, val_records = split(records, config.val_fraction, config.split_seed)
    cutoff = config.cutoff

    def tokenized(part: list[QAPair]) -> list[dict[str, list[int]]]:
        encoded = (encode_example(r, tokenizer, config.template, cutoff, config.train_on_inputs) for r in part)
        return [example for example in encoded if example is not None]

    train, validation = tokenized(train_records), tokenized(val_records)
    too_long = len(train_records) + len(val_records) - len(train) - len(validation)
    if not train or not validation:
        raise DataError(f"Every prompt fills the cutoff of {cutoff} tokens: raise --cutoff")
    validation.sort(key=lambda example: len(example["input_ids"]))
    return PreparedData(train, validation, sources, used, problems, too_long)


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
