"""A model's answer as formatted text: Markdown's formatting kept, anything that runs, loads or links dropped."""

from __future__ import annotations

from html.parser import HTMLParser

from medalpaca_core.text.answer_markdown import answer_html

HOSTILE = (
    "Signs:\n- thirst\n- **tiredness**\n\n"
    '<img src=http://198.51.100.7/pixel.png> <script>alert(1)</script> <a href="http://198.51.100.7">x</a>\n'
    "[a link](javascript:alert(2)) ![image](http://198.51.100.7/i.png) <http://198.51.100.7> www.example.com\n\n"
    "[ref]: http://198.51.100.7\n[see][ref]\n"
)


FORMATTING = {"p", "ul", "ol", "li", "strong", "em", "s", "code", "pre", "blockquote", "hr", "br", "table", "thead"}
FORMATTING |= {"tbody", "tr", "th", "td", "h1", "h2", "h3", "h4", "h5", "h6"}


class Tags(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, list]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def test_formatting_is_rendered():
    html = answer_html(HOSTILE)
    assert "<ul>\n<li>thirst</li>\n<li><strong>tiredness</strong></li>\n</ul>" in html
    assert "<table>" in answer_html("| a | b |\n|---|---|\n| 1 | 2 |\n") and "<em>x</em>" in answer_html("*x*")


def test_nothing_runs_loads_or_links_and_the_text_stays_readable():
    html = answer_html(HOSTILE)
    elements = Tags(html).found
    assert {tag for tag, _ in elements} <= FORMATTING and not [attrs for _, attrs in elements if attrs], elements
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as the text it is
    assert "[a link](javascript:alert(2))" in html and "![image](http://198.51.100.7/i.png)" in html
    assert "[ref]: http://198.51.100.7" in html


def test_a_code_block_keeps_its_text_and_its_language_cannot_break_out():
    html = answer_html('```js" onload="x\nlet a = "<b>";\n```\n')
    assert "&lt;b&gt;" in html and [attrs for _, attrs in Tags(html).found if attrs] == [[("class", 'language-js"')]]
