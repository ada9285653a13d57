"""A model's answer as formatted text: its Markdown (lists, emphasis, code, tables) rendered, and nothing else.

Models write Markdown, and a list shown as raw asterisks and dashes is hard to read; but an answer is
untrusted text, and a page must not let it run script, load a remote image (which tells a third party
who read the answer) or offer a ``javascript:`` link. So the answer is rendered here, on the server, by a
CommonMark parser with every rule that could produce such a thing switched off: raw HTML (shown as
text), images, links, autolinks and link reference definitions (their text stays as written). What
comes out holds only the tags of text formatting, with no attribute but a list's start number and a
code block's language class, whatever the answer held; the page shows it and keeps the plain text one
click away.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

# What a model's Markdown may become; everything that would make a request, run, or point elsewhere is off.
OFF = ["html_block", "html_inline", "image", "link", "autolink", "reference", "linkify"]
_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"]).disable(OFF)


def answer_html(text: str) -> str:
    """``text`` (a model's answer, possibly partial) as HTML of formatted text only; see the module's docstring."""
    return _RENDERER.render(text)
