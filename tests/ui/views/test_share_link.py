"""A link that reopens a comparison (ui/share_link.py): what it carries, and how a hostile one is read."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from medalpaca_core.generation.settings import PRESETS, GenerationSettings
from medalpaca_core.text.prompts import MAX_QUESTION_CHARS, PromptParts
from ui.views.share_link import link_query, read_link

KNOWN = {"smol-base", "smol-lora"}.__contains__


def query_of(link: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(link).query))


def test_a_link_reopens_the_question_context_variants_and_settings():
    settings = PRESETS["sampling"]
    link = link_query(["smol-lora", "smol-base"], PromptParts("What is asthma?", "Airways & lungs."), settings)
    shared = read_link(query_of(link), KNOWN)
    assert (shared.question, shared.context, shared.variant_ids) == (
        "What is asthma?",
        "Airways & lungs.",
        [
            "smol-lora",
            "smol-base",
        ],
    )
    assert shared.settings == settings and not shared.notes
    seeded = read_link(query_of(link_query(["smol-base"], PromptParts("q"), GenerationSettings(seed=7))), KNOWN)
    assert seeded.settings.seed == 7 and seeded.context == ""


def test_a_page_without_a_link_changes_nothing():
    shared = read_link({}, KNOWN)
    assert (shared.question, shared.variant_ids, shared.settings, shared.notes) == (None, None, None, [])


def test_unknown_variants_bad_settings_and_oversized_text_are_left_out_with_a_note():
    shared = read_link({"question": "q", "variants": "smol-base,<script>,nope", "temperature": "nan"}, KNOWN)
    assert shared.variant_ids == ["smol-base"] and shared.settings is None
    assert "named 3 variants; 1 is known here" in shared.notes[0] and "settings were left out" in shared.notes[1]
    huge = read_link({"question": "x" * (MAX_QUESTION_CHARS + 1)}, KNOWN)
    assert huge.question is None and "question was left out" in huge.notes[0]
