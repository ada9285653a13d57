"""A finished comparison as a plain record: what the app exports (Markdown, JSON) and what a vote stores.

The web app keeps the last comparison of each browser session as a ``Comparison``; the same
record feeds the downloads and the preference votes, so an exported file and a stored vote always
describe the same answers with the same settings.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..generation.answers import Answer, Stats
from ..generation.settings import GenerationSettings

STATS_FIELDS = [spec.name for spec in fields(Stats)]


def stats_dict(stats: Stats | None) -> dict[str, Any] | None:
    """``Stats`` as plain data, with the derived decode rate that readers of an export want."""
    return None if stats is None else {**asdict(stats), "tokens_per_s": stats.tokens_per_s}


@dataclass(frozen=True)
class AnswerRecord:
    """One variant's final answer; ``stats`` holds ``Stats`` as a dict plus ``tokens_per_s``."""

    variant_id: str
    label: str
    text: str
    status: str
    error: str | None = None
    stats: dict[str, Any] | None = None


@dataclass(frozen=True)
class Comparison:
    """One question asked of several variants, with the settings used and every answer."""

    question: str
    context: str
    settings: dict[str, Any]
    answers: tuple[AnswerRecord, ...]
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # lets a second vote replace the first

    @property
    def variant_ids(self) -> list[str]:
        return [answer.variant_id for answer in self.answers]

    @classmethod
    def from_answers(
        cls,
        question: str,
        context: str,
        settings: GenerationSettings,
        answers: dict[str, Answer],
        labels: dict[str, str] | None = None,
    ) -> Comparison:
        labels = labels or {}
        records = tuple(
            AnswerRecord(
                variant_id=ident,
                label=labels.get(ident, ident),
                text=answer.text,
                status=answer.status,
                error=answer.error,
                stats=stats_dict(answer.stats),
            )
            for ident, answer in answers.items()
        )
        return cls(question, context, asdict(settings), records)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False)


def _fenced(text: str) -> str:
    """``text`` in a code fence longer than any backtick run inside it, so it stays verbatim."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _settings_line(settings: dict[str, Any]) -> str:
    if settings.get("temperature", 0) > 0:
        mode = f"sampling (temperature {settings['temperature']}, top_p {settings['top_p']}, top_k {settings['top_k']})"
    else:
        mode = "greedy"
    seed = f", seed {settings['seed']}" if settings.get("seed") is not None else ""
    return f"{mode}, at most {settings['max_new_tokens']} new tokens{seed}"


def _stats_line(stats: dict[str, Any]) -> str:
    """``Stats.summary`` of an exported answer (its dict also holds the derived ``tokens_per_s``)."""
    return Stats(**{name: stats[name] for name in STATS_FIELDS}).summary(memory=False)


def to_markdown(comparison: Comparison) -> str:
    """A human-readable report; model text and user text sit in code fences, verbatim and inert."""
    lines = [
        "# MedAlpaca Studio comparison",
        "",
        f"- time: {comparison.created}",
        f"- variants: {', '.join(comparison.variant_ids)}",
        f"- generation: {_settings_line(comparison.settings)}",
        "",
        "## Context",
        "",
        _fenced(comparison.context) if comparison.context.strip() else "_(none)_",
        "",
        "## Question",
        "",
        _fenced(comparison.question),
    ]
    for answer in comparison.answers:
        lines += ["", f"## {answer.label} (`{answer.variant_id}`)", ""]
        if answer.error:
            lines += [f"Error: {answer.error}", ""]
        lines.append(_fenced(answer.text) if answer.text else "_(no answer)_")
        if answer.stats:
            lines += ["", _stats_line(answer.stats)]
    lines += ["", "_Research demo, not medical advice._", ""]
    return "\n".join(lines)


def write_exports(comparison: Comparison, folder: Path) -> tuple[Path, Path]:
    """Write the Markdown and JSON files for ``comparison`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"comparison-{comparison.created[:19].replace(':', '-')}-{comparison.id[:8]}"
    markdown, json_file = folder / f"{stem}.md", folder / f"{stem}.json"
    markdown.write_text(to_markdown(comparison), encoding="utf-8")
    json_file.write_text(to_json(comparison), encoding="utf-8")
    return markdown, json_file
