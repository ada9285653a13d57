"""The page at a desktop's size and a phone's (390×844), in headless chromium: every tab reachable, a screenshot
of each tab at both sizes in ``artifacts/`` (what a change to the layout is judged by), and on the phone the
inputs stacked with Submit and the first answer within one screen of the question, with no sideways scroll.
"""

from __future__ import annotations

import pytest

from tests.ui.test_browser import ARTIFACTS, browser, opened, pick  # noqa: F401 (the browser fixture)

pytest_plugins = ["tests.app_server"]  # the tiny_app fixture
pytestmark = pytest.mark.browser

SIZES = {"desktop": {"width": 1360, "height": 900}, "phone": {"width": 390, "height": 844}}
TABS = ["Compare", "Chat", "Evaluate", "Models"]


def run_comparison(page) -> None:
    page.fill("#compare-question textarea", "What are the symptoms of diabetes?")
    page.click("#compare-submit")
    page.wait_for_selector("#compare-vote")


@pytest.mark.parametrize("size", SIZES)
def test_every_tab_is_reachable_and_photographed(browser, tiny_app, size):  # noqa: F811 (the fixture)
    with opened(browser, tiny_app[0]) as page:
        page.set_viewport_size(SIZES[size])
        run_comparison(page)
        ARTIFACTS.mkdir(exist_ok=True)
        for tab in TABS:
            page.get_by_role("tab", name=tab).click()
            page.wait_for_function(
                "name => document.querySelector('[role=tab][aria-selected=true]').innerText.includes(name)", arg=tab
            )
            page.screenshot(path=str(ARTIFACTS / f"{size}-{tab.lower()}.png"), full_page=True)


# Page boxes in document coordinates (scroll included), by CSS selector; the first visible match.
BOXES = """selectors => Object.fromEntries(Object.entries(selectors).map(([name, selector]) => {
    const element = [...document.querySelectorAll(selector)].find(e => e.offsetParent !== null);
    const box = element.getBoundingClientRect();
    return [name, {top: box.top + scrollY, bottom: box.bottom + scrollY, left: box.left, right: box.right}];
}))"""
ANSWER_SEEN_PX = 120  # of the first answer column, in sight with the question box at the top of the screen


def test_phone_stacks_the_inputs_and_keeps_submit_and_the_answers_close(browser, tiny_app):  # noqa: F811
    height = SIZES["phone"]["height"]
    with opened(browser, tiny_app[0]) as page:
        page.set_viewport_size(SIZES["phone"])
        run_comparison(page)
        selectors = {
            "context": "#compare-context",
            "question": "#compare-question",
            "submit": "#compare-submit",
            "answer": ".answer-column",
            "table": "#leaderboard-table",
        }
        box = page.evaluate(BOXES, selectors)
        assert box["question"]["top"] >= box["context"]["bottom"], box  # stacked, the question last
        assert box["submit"]["top"] >= box["question"]["bottom"], box
        assert box["submit"]["bottom"] <= box["question"]["top"] + height, box
        assert box["answer"]["top"] + ANSWER_SEEN_PX <= box["question"]["top"] + height, box
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), "the page scrolls sideways"
        headers = page.locator("#leaderboard-table thead th").all()
        assert headers and all(header.bounding_box()["x"] + header.bounding_box()["width"] <= 390 for header in headers)
        assert all(page.get_by_role("tab", name=tab).is_visible() for tab in TABS)


# Per shown answer column, the top of the column and of each row that every column has: status, notes, prompt.
ROW_TOPS = """() => [...document.querySelectorAll('#compare-answers .answer-column')]
    .filter(column => column.offsetParent !== null)
    .map(column => Object.fromEntries(['', ' .answer-status', ' .answer-notes', ' .answer-prompt'].map(row => {
        const element = row ? column.querySelector(row.trim()) : column;
        const shown = element && element.offsetParent !== null;
        return [row.trim() || 'column', shown ? element.getBoundingClientRect().top : null];
    })))"""


def test_the_answer_columns_rows_line_up(browser, tiny_app):  # noqa: F811 (the fixture)
    """Side by side, columns whose status lines and notes differ in length (one failed, with a long message) still
    start their status, notes and prompt rows at the same height."""
    with opened(browser, tiny_app[0]) as page:
        page.set_viewport_size(SIZES["desktop"])
        pick(page, "#compare-variants", "broken")  # its column holds an error message, longer than any status
        run_comparison(page)
        page.wait_for_function("document.querySelector('#compare-run-status').innerText.includes('1 failed')")
        page.get_by_text("Prompt this model received").first.wait_for()
        columns = page.evaluate(ROW_TOPS)
        page.locator("#compare-answers").screenshot(path=str(ARTIFACTS / "compare-columns.png"))
    assert len(columns) == 4 and len({round(column["column"]) for column in columns}) == 1, columns
    for row in [".answer-status", ".answer-notes", ".answer-prompt"]:
        tops = [column[row] for column in columns if column[row] is not None]
        assert tops and max(tops) - min(tops) <= 1, (row, columns)
