"""A link that reopens a comparison: its question, context, variants and generation settings in the page's URL.

A shared link is typed by nobody and trusted by nobody: it is read like any other input, so a variant the
registry does not know is dropped, text goes through ``plain_text`` and the input limits, and settings that
do not validate are left at the page's defaults, each with a note saying what was left out. Opening a link
only fills the inputs; the visitor presses Submit (a link must not be a way to run models for someone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from medalpaca_core.generation.settings import GenerationSettings, SettingsError
from medalpaca_core.models.selection import MAX_VARIANTS
from medalpaca_core.text.plural import counted
from medalpaca_core.text.prompts import PromptError, PromptParts, validate_parts
from medalpaca_core.text.visitor import plain_text

from .common import SETTING_NAMES


def link_query(variant_ids: list[str], parts: PromptParts, settings: GenerationSettings) -> str:
    """'?question=…&context=…&variants=a,b&temperature=…': what the page's URL needs to reopen the comparison."""
    values = {"question": parts.question, "context": parts.context, "variants": ",".join(variant_ids)}
    values |= {name: getattr(settings, name) for name in SETTING_NAMES if getattr(settings, name) is not None}
    return "?" + urlencode({name: value for name, value in values.items() if value != ""})


@dataclass
class SharedComparison:
    """What a link asks the page to show: None where the link says nothing (the page keeps its own)."""

    question: str | None = None
    context: str | None = None
    variant_ids: list[str] | None = None
    settings: GenerationSettings | None = None
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def read_link(query: Mapping[str, str], known: Callable[[str], bool]) -> SharedComparison:
    """The comparison a page URL's query asks for; ``known`` says whether a variant id is in the registry."""
    shared = SharedComparison()
    if "question" not in query:
        return shared
    try:
        parts = validate_parts(PromptParts(plain_text(query["question"]), plain_text(query.get("context", ""))))
    except PromptError as error:
        shared.notes.append(f"The link's question was left out: {error}")
        return shared
    shared.question, shared.context = parts.question, parts.context
    asked = [ident for ident in plain_text(query.get("variants", "")).split(",") if ident]
    shared.variant_ids = [ident for ident in dict.fromkeys(asked) if known(ident)][:MAX_VARIANTS] or None
    if len(asked) != len(shared.variant_ids or []):
        found = len(shared.variant_ids or [])
        are = "is" if found == 1 else "are"
        shared.notes.append(f"The link named {counted(len(asked), 'variant')}; {found} {are} known here.")
    shared.settings = read_settings(query, shared.notes)
    return shared


def read_settings(query: Mapping[str, str], notes: list[str]) -> GenerationSettings | None:
    """The link's settings, validated; None (the page's own) when it has none or they do not validate."""
    given = {name: query[name] for name in SETTING_NAMES if name in query}
    if not given:
        return None
    try:
        numbers = {name: float(value) for name, value in given.items()}
        whole = {name: int(numbers[name]) for name in ("top_k", "max_new_tokens", "seed") if name in numbers}
        return GenerationSettings(**{**numbers, **whole}).validated()
    except (ValueError, OverflowError, SettingsError) as error:
        notes.append(f"The link's generation settings were left out: {error}")
        return None
