"""How a value that a user sent is quoted back in a message or a log line: a short prefix, never all of it.

Ids, file names and exam fields come from visitors. Quoting them whole would let one request write
megabytes into the server log (or into a message that the page then renders), so every message that
names such a value quotes at most ``ECHO_CHARS`` characters of it and says how long it was.
"""

from __future__ import annotations

ECHO_CHARS = 40


def brief(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr``-quoted ``value`` if short, else its first ``limit`` characters and its length."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"
