"""Visitor text: whatever a page or an API client sends becomes text every tokenizer, SQLite and JSON take."""

from __future__ import annotations

import pytest

from medalpaca_core.text.visitor import plain_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (123, "123"),
        ("tab\tnew\nline\r", "tab\tnew\nline\r"),
        ("nul\x00 bell\x07 esc\x1b[2J del\x7f", "nul bell esc[2J del"),
        ("lone \ud800 and \udfff", "lone \ufffd and \ufffd"),
        ("emoji 🩺 kept", "emoji 🩺 kept"),
    ],
)
def test_plain_text(value, text):
    assert plain_text(value) == text
    plain_text(value).encode("utf-8")  # always encodable: tokenizers, SQLite and JSON take it
