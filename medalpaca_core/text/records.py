"""Medical Meadow records: the ``QAPair`` type and the one reader that training and evaluation share.

A record is ``{"instruction", "input", "output"}`` (Medical Meadow's format), optionally with a
``context`` passage. Fine-tuning and the held-out loss read records through ``load_records`` so that
both apply the same rules: a malformed record (not an object, a missing or empty ``input``/``output``,
a JSONL line that is not JSON) stops the read with a message naming the source and the record, or,
when the caller asks to skip them, is left out and reported -- never dropped silently.
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime import hub
from .plural import counted
from .prompts import DEFAULT_INSTRUCTION, PromptParts

log = logging.getLogger(__name__)

REQUIRED_TEXT = ("input", "output")
SHOWN_PROBLEMS = 20


class RecordError(ValueError):
    """Records that cannot be read or used; the message names the source and, for records, the index."""


@dataclass(frozen=True)
class QAPair:
    """One question and its reference answer, with the context the prompt shows (empty: none)."""

    instruction: str
    input: str
    output: str
    context: str = ""

    def parts(self) -> PromptParts:
        """The prompt's parts: inference, training and evaluation render the same record alike."""
        return PromptParts(question=self.input, context=self.context, instruction=self.instruction)


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
            raise RecordError(f"{spec}: a cap of 0 records leaves nothing to use")
        return cls(location, cap)

    @property
    def name(self) -> str:
        """How cards and messages name it: the dataset id, or the file name (paths are machine-specific)."""
        return self.location if self.is_hub else Path(self.location).name

    @property
    def is_hub(self) -> bool:
        return not Path(self.location).expanduser().exists() and hub.looks_like_hub_id(self.location)


@dataclass(frozen=True)
class Unparsed:
    """A JSONL line that is not JSON, kept in place so later records keep their index."""

    reason: str


@dataclass
class Records:
    """What a read produced: the usable records, how many came from each source, what was skipped."""

    pairs: list[QAPair]
    used: dict[str, int]
    problems: list[str]  # one line per malformed record: "source, record N: what is wrong"


def _read_file(path: Path) -> list[Any]:
    """Raw items of a JSON list or of a JSONL file (one record per non-blank line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"Cannot read {path.name}: {error}") from None
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
        raise RecordError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(document, list):
        raise RecordError(f"{path.name}: expected a JSON list of {{instruction, input, output}} records")
    return document


def _read_hub(dataset_id: str) -> list[Any]:
    try:
        import datasets

        return list(datasets.load_dataset(dataset_id, split="train"))
    except Exception as error:  # datasets raises many kinds (offline, not found, gated, bad script)
        offline = " (HF_HUB_OFFLINE is set)" if hub.offline_mode() else ""
        raise RecordError(f"Cannot load the dataset {dataset_id} from the Hugging Face Hub{offline}: {error}") from None


def read_source(source: Source) -> list[Any]:
    """The raw items of one source, in order."""
    path = Path(source.location).expanduser()
    if path.is_file():
        if path.suffix not in (".json", ".jsonl"):
            raise RecordError(f"{path.name}: only .json (a list of records) and .jsonl files are supported")
        return _read_file(path)
    if path.exists():
        raise RecordError(f"{path.name} is a folder; pass a .json or .jsonl file")
    if source.is_hub:
        return _read_hub(source.location)
    raise RecordError(f"{source.location}: no such file, and not a Hugging Face dataset id (owner/name)")


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
    for key in ("instruction", "context"):
        if not isinstance(item.get(key, ""), str | None):
            return f"{key!r} is {type(item[key]).__name__}, not text"
    return None


def to_pair(item: dict[str, Any]) -> QAPair:
    """A checked record as a QAPair (stripped text, the default instruction where none is given)."""
    instruction = (item.get("instruction") or "").strip() or DEFAULT_INSTRUCTION
    return QAPair(instruction, item["input"].strip(), item["output"].strip(), (item.get("context") or "").strip())


def problem_report(problems: list[str]) -> str:
    lines = problems[:SHOWN_PROBLEMS]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"... and {len(problems) - SHOWN_PROBLEMS} more")
    return f"{counted(len(problems), 'malformed record')}:\n  " + "\n  ".join(lines)


def load_records(sources: list[Source], seed: int = 0, skip_malformed: bool = False) -> Records:
    """All sources mixed, each capped to a seeded random sample; malformed records stop the read.

    With ``skip_malformed`` they are left out, logged and returned in ``problems`` instead.
    """
    pairs: list[QAPair] = []
    used: dict[str, int] = {}
    problems: list[str] = []
    for source in sources:
        valid = []
        for index, item in enumerate(read_source(source)):
            reason = check_record(item)
            if reason is None:
                valid.append(to_pair(item))
            else:
                problems.append(f"{source.name}, record {index}: {reason}")
        if source.cap is not None and source.cap < len(valid):
            keep = sorted(random.Random(seed).sample(range(len(valid)), source.cap))
            valid = [valid[i] for i in keep]
        used[source.name] = len(valid)
        pairs += valid
    if problems:
        report = problem_report(problems)
        if not skip_malformed:
            raise RecordError(f"{report}\nFix them, or pass --skip-malformed to leave them out.")
        log.warning("Skipping %s", report)
    empty = [name for name, count in used.items() if not count]
    if empty:
        raise RecordError(f"{', '.join(empty)} holds no usable records")
    return Records(pairs, used, problems)
