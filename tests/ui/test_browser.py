"""The web app in a real browser (Debian's chromium, headless, driven by Playwright).

Fills in a comparison, waits until every column has its answer, keeps a screenshot in
``artifacts/``, and proves that model text containing HTML and script is shown as text, both in
the answer columns and in the chat, as are messages that quote what a visitor sent (an uploaded
exam's content); a megabyte-long question gets the server's message and the page goes on working.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from medalpaca_core.runtime.paths import PROJECT_ROOT
from ui.tabs.compare import PLAIN_LABEL

pytest_plugins = ["tests.app_server"]  # the tiny_app fixture
pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 180_000  # a wait for the page, generous: on a loaded machine a run took over 60 s
ANSWER_TOKENS = 24  # new tokens per answer in the browser tests
# What a misbehaving model might write; "echo" answers with the question, so this becomes its answer.
PAYLOAD = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"><b>bold?</b>'
# A model answer in Markdown with everything a formatted view must not turn into a request, script or link.
MARKDOWN_PAYLOAD = (
    "Signs:\n- thirst\n- tiredness\n\n<img src=http://198.51.100.7/pixel.png> <script>window.__xss = 5</script> "
    "[more](javascript:window.__xss=6) ![chart](http://198.51.100.7/chart.png) ${window.__xss = 7}"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 900},
        )
        yield browser
        browser.close()


@contextmanager
def opened(browser, url: str) -> Iterator:
    """A new tab on the app at ``url``, once its Compare tab can take a question, set to short answers (a run
    then takes seconds whatever else the machine does); closed afterwards."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#compare-question textarea")
    page.get_by_text("Generation settings").first.click()
    tokens = page.get_by_label("number input for Max new tokens").first
    tokens.fill(str(ANSWER_TOKENS))
    tokens.press("Enter")
    page.get_by_text("Generation settings").first.click()  # closed again, as a visitor finds it
    yield page
    page.close()


@pytest.fixture
def page(browser, tiny_app):
    with opened(browser, tiny_app[0]) as page:
        yield page


def pick(page, dropdown: str, variant_id: str) -> None:
    """Open a variant dropdown and click the option of ``variant_id`` (labels end in '[id]'), then close it."""
    page.locator(f"{dropdown} input").click()
    page.locator(f'{dropdown} [role=option][aria-label*="[{variant_id}]"]').click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "([root, id]) => [...document.querySelectorAll(`${root} .token`)].some(t => t.innerText.includes(`[${id}]`))"
        " || document.querySelector(`${root} input`).value.includes(`[${id}]`)",  # a multiselect's tokens, or the value
        arg=[dropdown, variant_id],
    )


def answers_when_finished(page) -> list[str]:
    """The plain text of every shown column once the run has finished (the text boxes behind 'Plain text')."""
    page.wait_for_function("document.querySelector('#compare-run-status').innerText.includes('Finished')")
    return [box.input_value() for box in page.locator(".answer-column:visible .answer textarea").all()]


def xss_ran(page) -> bool:
    return page.evaluate("window.__xss !== undefined")


def test_compare_streams_every_column_and_shows_html_as_text(page):
    page.fill("#compare-context textarea", "Diabetes is a chronic disease of high blood sugar.")
    page.fill("#compare-question textarea", "What are the symptoms of diabetes?")
    page.click("#compare-submit")
    answers = answers_when_finished(page)
    assert len(answers) == 3 and all(answer.strip() for answer in answers), answers
    page.wait_for_selector("#compare-vote")  # the vote and the downloads appear once all answers are in
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

    pick(page, "#compare-variants", "echo")
    page.fill("#compare-question textarea", PAYLOAD)
    page.click("#compare-submit")
    page.wait_for_function("document.querySelector('#compare-run-status').innerText.includes('Finished 4 answers')")
    answers = answers_when_finished(page)
    assert PAYLOAD in answers, answers
    assert page.locator(".answer-column b, .answer-column script").count() == 0
    assert not xss_ran(page)


def test_stop_is_off_while_idle_and_ends_a_run_from_the_page(page, held_answers):
    """Stop is disabled until a run starts, stops that run (held: it is still going, however fast the machine) with
    its text kept, and is disabled again when the run is over."""
    stop = page.locator("#compare-stop")
    assert stop.is_disabled()  # nothing runs yet
    page.fill("#compare-question textarea", "What are the symptoms of diabetes?")
    page.click("#compare-submit")
    page.wait_for_function("document.querySelector('#compare-run-status').innerText.includes('Generating')")
    assert held_answers.reached.wait(TIMEOUT_MS / 1000), "the run was never held"
    stop.click()
    page.wait_for_function("document.querySelector('#compare-run-status').innerText.includes('Stopped by you')")
    page.wait_for_function("document.querySelector('#compare-stop').disabled")
    assert all(box.input_value().strip() for box in page.locator(".answer-column:visible .answer textarea").all())


def test_enter_submits_the_question_and_shift_enter_breaks_the_line(page):
    pick(page, "#compare-variants", "echo")  # echo answers with the question it received
    page.click("#compare-question textarea")
    page.keyboard.type("What is anemia?")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Answer briefly.")
    assert page.input_value("#compare-question textarea") == "What is anemia?\nAnswer briefly."
    page.keyboard.press("Enter")
    assert "What is anemia?\nAnswer briefly." in answers_when_finished(page)
    assert page.input_value("#compare-question textarea") == "What is anemia?\nAnswer briefly."  # no newline added


def test_a_vote_shows_its_own_ratings_marks_its_column_and_offers_a_new_round(page):
    page.fill("#compare-question textarea", "What are the symptoms of diabetes?")
    page.click("#compare-submit")
    answers_when_finished(page)
    page.click("#compare-share")  # a link that reopens this comparison
    page.wait_for_function("document.querySelector('#compare-link textarea')?.value.includes('?question=')")
    reopened = page.context.new_page()
    reopened.goto(page.input_value("#compare-link textarea"))
    reopened.wait_for_selector("#compare-question textarea")
    reopened.wait_for_function("document.querySelector('#compare-question textarea').value.includes('diabetes')")
    assert reopened.input_value("#compare-question textarea") == "What are the symptoms of diabetes?"
    reopened.close()
    page.locator("#compare-choice label", has_text="tiny-lora-1").click()
    page.click("#compare-vote")
    page.wait_for_function("document.querySelector('#compare-vote-message').innerText.includes('names shown')")
    page.wait_for_function("document.querySelector('#leaderboard-notes').innerText.includes('1 vote cast with')")
    assert page.get_by_label("Votes cast with the names shown").is_checked(), "the view of the vote just cast"
    table = page.locator("#leaderboard-table").inner_text()
    assert all(ident in table for ident in ("tiny-lora-0", "tiny-lora-1", "tiny-lora-2")), table
    chosen = page.locator(".answer-column.chosen")
    assert chosen.count() == 1 and "tiny-lora-1" in chosen.inner_text()
    assert page.locator(".toast-body").count() == 0, "no toast over the columns"
    page.screenshot(path=str(ARTIFACTS / "compare-after-vote.png"), full_page=True)

    page.click("#compare-new-round")
    page.wait_for_function("!document.querySelector('#compare-vote-message')?.offsetParent")  # the vote area went
    assert page.input_value("#compare-question textarea") == ""
    assert page.evaluate("document.activeElement === document.querySelector('#compare-question textarea')")
    assert page.locator(".answer-column.chosen").count() == 0


def test_answers_are_formatted_markdown_with_nothing_that_runs_loads_or_links(page):
    origin = page.url.split("/?")[0].rstrip("/")
    outside = []  # every request that leaves the page's own server
    page.on("request", lambda request: None if request.url.startswith(origin) else outside.append(request.url))
    pick(page, "#compare-variants", "echo")  # echo answers with the question it received
    page.fill("#compare-question textarea", MARKDOWN_PAYLOAD)
    page.click("#compare-submit")
    assert MARKDOWN_PAYLOAD in answers_when_finished(page)
    # Gradio puts the class on two nested elements: the outer one holds the answer
    formatted = page.locator(".answer-column:visible .answer-md").filter(has=page.locator("li")).first
    assert formatted.locator("li").all_inner_texts() == ["thirst", "tiredness"]
    assert formatted.locator("img, script, a, iframe").count() == 0
    assert "javascript:" in formatted.inner_text() and "<script>" in formatted.inner_text()  # shown as text
    assert not xss_ran(page) and not outside, outside
    page.get_by_label(PLAIN_LABEL).check()  # the plain text, one click away
    assert page.locator(".answer-column:visible .answer textarea").first.is_visible()
    assert not formatted.is_visible()


def test_chat_shows_html_as_text(page):
    page.get_by_role("tab", name="Chat").click()
    pick(page, "#chat-variant", "echo")
    page.fill("#chat-message textarea", PAYLOAD)
    page.keyboard.press("Enter")
    conversation = page.locator("#chat-conversation")
    page.wait_for_function("document.querySelector('#chat-status').innerText.includes('ended')")
    assert conversation.inner_text().count(PAYLOAD) == 2, conversation.inner_text()  # question and answer
    assert conversation.locator("b, script, img[src='x']").count() == 0
    assert not xss_ran(page)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)


def toast(page, text: str):
    """The error toast that says ``text`` (Gradio shows gr.Error messages as toasts)."""
    message = page.locator(".toast-body", has_text=text)
    message.wait_for()
    return message


def test_megabyte_question_gets_the_servers_message_and_the_page_goes_on(page):
    page.fill("#compare-question textarea", "x" * 1_000_000)
    page.click("#compare-submit")
    toast(page, "The question is 1,000,000 characters; the limit is 4,000")
    page.fill("#compare-question textarea", "What are the symptoms of diabetes?")
    page.click("#compare-submit")
    assert all(answer.strip() for answer in answers_when_finished(page))


def test_uploaded_exam_content_in_messages_is_shown_as_text(page, tmp_path):
    """An error message that quotes an uploaded file (here an option letter that is HTML) stays text."""
    html = '<img src=x onerror="window.__xss = 3">'
    (tmp_path / "step1.json").write_text(json.dumps([{"question": "Q?", "options": {html: "yes", "B": "no"}}]))
    (tmp_path / "step1_solutions.json").write_text('{"1": "B"}')
    page.get_by_role("tab", name="Evaluate").click()
    page.get_by_label("Uploaded files").check()
    files = [str(tmp_path / "step1.json"), str(tmp_path / "step1_solutions.json")]
    page.locator("input[type=file][accept*=jsonl]").set_input_files(files)
    page.get_by_role("button", name="Evaluate").click()
    message = toast(page, "is not a single capital letter")
    assert html in message.inner_text()
    assert message.locator("img").count() == 0
    assert not xss_ran(page)
    page.screenshot(path=str(ARTIFACTS / "evaluate-error.png"), full_page=True)
