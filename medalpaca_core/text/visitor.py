"""Text from visitors: as models, votes, exports and messages get it, and as a message quotes it back.

Everything the page or an API receives may come from a script rather than a browser: the web app and
the OpenAI-compatible API both pass every text through ``plain_text`` before anything else sees it.

Ids, file names and exam fields come from visitors too. Quoting them whole would let one request write
megabytes into the server log (or into a message that the page then renders), so every message that
names such a value quotes it through ``brief``: at most ``ECHO_CHARS`` characters and how long it was.
"""

from __future__ import annotations

import re

# C0 control characters but tab, line feed and carriage return, and DEL: never part of a question, and
# terminal escapes among them would reach whatever displays the stored votes and exports.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Halves of UTF-16 surrogate pairs, alone: JSON can carry them ("\\ud800"), UTF-8 cannot, so tokenizers,
# SQLite and the page's own messages would fail on them.
LONE_SURROGATES = re.compile(r"[\ud800-\udfff]")


def plain_text(value: object) -> str:
    """Text from the page or the API as models, votes, exports and messages get it: a string (None is empty),
    valid Unicode (lone surrogates become U+FFFD) and without control characters."""
    text = "" if value is None else str(value)
    return CONTROL_CHARACTERS.sub("", LONE_SURROGATES.sub("\ufffd", text))


ECHO_CHARS = 40


def brief(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr``-quoted ``value`` if short, else its first ``limit`` characters and its length."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"
