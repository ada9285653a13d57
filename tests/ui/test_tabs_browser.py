"""Chat, Evaluate and the charts in a real browser (headless chromium): what a visitor sees of them.

Unavailable variants are listed apart under every picker, never offered in it; charts take the dark
theme's background; Evaluate's tables keep their numbers whole; Chat answers again and takes a turn back;
Stop is disabled while nothing runs. Screenshots of Chat, Evaluate and Models at 1400 px and 390×844
(and the charts on the dark theme) go to ``artifacts/tabs-*.png``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from medalpaca_core.arena.leaderboard import MIN_VOTES
from tests.app_server import compare, vote
from tests.ui.test_browser import ARTIFACTS, browser, opened, pick  # noqa: F401 (the browser fixture)

pytest_plugins = ["tests.app_server"]  # the tiny_app fixture
pytestmark = pytest.mark.browser

SIZES = {"wide": {"width": 1400, "height": 900}, "phone": {"width": 390, "height": 844}}
WHITE_SHARE = 0.02  # of a chart's pixels, at most, near white (its text and marks are grey or coloured)


# The cells whose text the browser broke over more than one line (distinct tops of its line boxes).
WRAPPED_CELLS = """selector => [...document.querySelectorAll(selector)].filter(cell => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size > 1;
}).map(cell => cell.innerText)"""


def white_share(png: bytes) -> float:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return float((pixels.min(axis=2) > 235).mean())


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_function(
        "name => document.querySelector('[role=tab][aria-selected=true]').innerText.includes(name)", arg=name
    )


def evaluate_one_question(page) -> None:
    open_tab(page, "Evaluate")
    page.get_by_label("Questions per step (blank = all)").fill("1")
    page.get_by_role("button", name="Evaluate", exact=True).click()
    page.locator("#evaluate-chart img").wait_for()


def chat_once(page, message: str) -> None:
    open_tab(page, "Chat")
    pick(page, "#chat-variant", "echo")
    page.fill("#chat-message textarea", message)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#chat-status').innerText.trim().length > 0")
    page.wait_for_function("document.querySelector('#chat-stop').disabled")  # the run is over


def test_unavailable_variants_are_listed_apart_under_every_picker(browser, tiny_app):  # noqa: F811 (the fixture)
    with opened(browser, tiny_app[0]) as page:
        for tab, picker in [("Compare", "#compare-variants"), ("Chat", "#chat-variant"), ("Evaluate", None)]:
            open_tab(page, tab)
            listed = page.locator(".unavailable:visible")
            assert listed.count() == 1 and "1 more variant (it needs a download or a GPU)" in listed.inner_text(), tab
            listed.locator("button, .label-wrap").first.click()  # open it: each variant with its reason
            listed.get_by_text("HF_HUB_OFFLINE").wait_for()  # its content renders once it is open
            assert "Hub model (offline) offline-hub" in listed.inner_text()
            if picker:
                page.locator(f"{picker} input").click()
                options = page.locator(f"{picker} [role=option]").all_inner_texts()
                page.keyboard.press("Escape")
            else:
                options = page.locator("label:visible").all_inner_texts()
            assert any("tiny-lora-0" in option for option in options), options
            assert not any("offline-hub" in option for option in options), (tab, options)


def test_charts_take_the_dark_themes_background(browser, tiny_app):  # noqa: F811 (the fixture)
    client = Client(tiny_app[0], verbose=False)
    for _ in range(MIN_VOTES):  # blind votes: the leaderboard has ratings, and its chart
        shown = compare(client, ["tiny-lora-0", "tiny-lora-1"], blind=True, max_new_tokens=4)
        vote(client, shown["id"], "Model A")
    with opened(browser, f"{tiny_app[0]}/?__theme=dark") as page:
        page.set_viewport_size(SIZES["wide"])
        page.locator("#leaderboard-chart img").wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#leaderboard").screenshot(path=str(ARTIFACTS / "tabs-dark-leaderboard.png"))
        shares = {"leaderboard": white_share(page.locator("#leaderboard-chart img").screenshot())}
        evaluate_one_question(page)  # in the Evaluate tab: the leaderboard is out of sight from here
        page.screenshot(path=str(ARTIFACTS / "tabs-dark-evaluate.png"), full_page=True)
        shares["evaluate"] = white_share(page.locator("#evaluate-chart img").screenshot())
    assert all(share < WHITE_SHARE for share in shares.values()), f"share of white on the dark theme: {shares}"


def test_chat_answers_again_takes_a_turn_back_and_stop_is_off_when_idle(browser, tiny_app):  # noqa: F811
    with opened(browser, tiny_app[0]) as page:
        open_tab(page, "Chat")
        assert page.locator("#chat-stop").is_disabled()  # nothing runs yet
        chat_once(page, "What is anemia?")
        conversation = page.locator("#chat-conversation")
        conversation.get_by_role("button", name="Retry").click()
        page.wait_for_function("document.querySelector('#chat-stop').disabled")
        assert conversation.inner_text().count("What is anemia?") == 2  # the same one turn, answered again
        conversation.get_by_role("button", name="Undo").click()
        page.wait_for_function("document.querySelector('#chat-message textarea').value === 'What is anemia?'")
        assert "What is anemia?" not in conversation.inner_text()


def test_evaluate_keeps_numbers_whole_and_says_where_it_is(browser, tiny_app):  # noqa: F811 (the fixture)
    with opened(browser, tiny_app[0]) as page:
        evaluate_one_question(page)
        assert page.locator("#evaluate-stop").is_disabled()
        page.get_by_text("The MedAlpaca paper's USMLE accuracy").click()
        assert page.locator("#evaluate-results td, #evaluate-paper td").count() > 10
        broken = page.evaluate(WRAPPED_CELLS, "#evaluate-results td, #evaluate-paper td")
        assert not broken, broken


@pytest.mark.parametrize("size", SIZES)
def test_chat_evaluate_and_models_are_photographed(browser, tiny_app, size):  # noqa: F811 (the fixture)
    with opened(browser, tiny_app[0]) as page:
        page.set_viewport_size(SIZES[size])
        ARTIFACTS.mkdir(exist_ok=True)
        chat_once(page, "What are the symptoms of diabetes?")
        page.screenshot(path=str(ARTIFACTS / f"tabs-{size}-chat.png"), full_page=True)
        evaluate_one_question(page)
        page.get_by_text("The MedAlpaca paper's USMLE accuracy").click()
        page.screenshot(path=str(ARTIFACTS / f"tabs-{size}-evaluate.png"), full_page=True)
        open_tab(page, "Models")
        page.screenshot(path=str(ARTIFACTS / f"tabs-{size}-models.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), "the page scrolls sideways"
