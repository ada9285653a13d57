"""A blind comparison in a real browser (headless chromium), on the app as a Space serves it.

Before the vote the Compare tab's columns and vote area name no variant (HTML, text and the
answer boxes' values); after it the names, statistics, adapter lines and prompts appear; the
leaderboard lists the voted variants with their counts (the chart waits for a rating). Screenshots of
each stage go to ``artifacts/``.
"""

from __future__ import annotations

import pytest

from tests.app_server import BASE, ECHO, TRIO
from tests.ui.test_browser import ARTIFACTS, browser, opened  # noqa: F401 (the browser fixture)

pytest_plugins = ["tests.app_server"]  # the public_app fixture
pytestmark = pytest.mark.browser

NAMES = [BASE, *TRIO, ECHO, "Tiny base", "Tiny LoRA", "tok/s", " MB"]
# The Compare tab without the variant picker (it lists what may be compared, not who wrote which column) and
# the leaderboard (ratings of earlier votes): its HTML plus what its text boxes hold.
COMPARE_TAB_TEXT = """() => {
    const tab = document.querySelector('#compare-question').closest('[role=tabpanel]').cloneNode(true);
    tab.querySelectorAll('#compare-variants, #leaderboard').forEach(element => element.remove());
    const values = [...document.querySelectorAll('.answer-column textarea')].map(box => box.value);
    return tab.outerHTML + values.join(' ');
}"""


@pytest.fixture
def page(browser, public_app):  # noqa: F811 (the browser fixture, imported)
    with opened(browser, public_app[0]) as page:
        yield page


def test_blind_comparison_names_nobody_until_the_vote_then_shows_everything(page):
    assert not page.locator("#compare-blind").is_visible(), "a public deployment offers no way out of blind mode"
    page.fill("#compare-question textarea", "What are the symptoms of diabetes?")
    page.click("#compare-submit")
    page.wait_for_function("document.querySelector('#compare-run-status').innerText.includes('Finished')")
    page.wait_for_selector("#compare-vote")
    shown = page.evaluate(COMPARE_TAB_TEXT)
    assert "Model A" in shown and "Model C" in shown
    assert not [name for name in NAMES if name in shown], [name for name in NAMES if name in shown]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare-blind-before-vote.png"), full_page=True)

    page.locator("#compare-choice label").first.click()  # a column that answered (the bare base's is blank)
    page.click("#compare-vote")
    page.wait_for_function("document.querySelector('#compare-vote-message').innerText.includes('Your blind vote')")
    page.wait_for_function("document.querySelectorAll('.answer-notes strong').length >= 3")
    notes = set(page.locator(".answer-notes").all_inner_texts())  # Gradio puts the class on two nested elements
    assert sum(" was Tiny" in text for text in notes) == 3, notes
    assert sum((" departs from its base " in t) or (" answered exactly as its base " in t) for t in notes) == 2, notes
    assert "tok/s" in " ".join(page.locator(".answer-status").all_inner_texts())
    page.get_by_text("Prompt this model received").first.click()
    page.wait_for_function(
        "[...document.querySelectorAll('.answer-column textarea')].some(box => box.value.includes('### Response'))"
    )
    page.screenshot(path=str(ARTIFACTS / "compare-blind-after-vote.png"), full_page=True)

    board = page.locator("#leaderboard")
    page.wait_for_function("document.querySelector('#leaderboard-notes').innerText.includes('1 blind vote.')")
    assert "No variant has 5 votes yet" in board.locator("#leaderboard-notes").inner_text()
    assert not board.locator("#leaderboard-chart").is_visible(), "a sentence instead of an empty chart"
    table = board.locator("#leaderboard-table").inner_text()
    # the variants whose columns answered (the bare base writes only whitespace): a row each, rated after 5 votes
    assert all(ident in table for ident in TRIO[:2]) and "after 5 votes" in table and "nan" not in table.lower(), table
    board.scroll_into_view_if_needed()
    board.screenshot(path=str(ARTIFACTS / "leaderboard.png"))
