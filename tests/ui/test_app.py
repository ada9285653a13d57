"""The web app over real HTTP with gradio_client: compare, chat, stop, vote, export, models, bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from medalpaca_core.arena.votes import ALL_BAD, TIE, VOTES_FILE
from medalpaca_core.models.selection import default_variants
from medalpaca_core.text.prompts import MAX_QUESTION_CHARS
from tests.app_server import CONTEXT, QUESTION, SHORT, TRIO, compare, page, streamed, vote

pytest_plugins = ["tests.app_server"]  # the tiny_app and default_app fixtures


@pytest.fixture
def client(tiny_app) -> Client:
    """A fresh browser session (its own state) on the module's app."""
    return Client(tiny_app[0], verbose=False)


def test_three_variants_stream_three_answers(tiny_app, held_answers):
    """Each column shows its answer while it is being written: the run is held after a few tokens (any machine is
    slower than that), and the page already shows them; once let go, every answer ends."""
    job = Client(tiny_app[0], verbose=False).submit(TRIO, QUESTION, CONTEXT, *SHORT.values(), api_name="/compare")
    partial = page(streamed(job, lambda outputs: all(page(outputs)["answers"][v][0] for v in TRIO)))
    assert all("Generating" in status for _, status in partial["answers"].values()), partial
    held_answers.release()
    result = page(job.result())
    assert set(result["answers"]) == set(TRIO)
    for variant, (text, status) in result["answers"].items():
        assert text.startswith(partial["answers"][variant][0]) and "tok/s" in status and "ended" in status, result
    assert result["run"].startswith("Finished 3 answers")


def test_default_selection_is_three_variants_batched_together(tiny_app):
    info = Client(tiny_app[0], verbose=False).view_api(return_format="dict", print_info=False)
    parameters = info["named_endpoints"]["/compare"]["parameters"]
    assert parameters[0]["parameter_default"] == TRIO


@pytest.mark.parametrize(
    ("endpoint", "own", "after"),
    [("/compare", ["variant_ids", "question", "context"], ["blind"]), ("/chat", ["variant_id", "message"], [])],
)
def test_settings_are_named_parameters_after_the_endpoints_own(tiny_app, endpoint, own, after):
    info = Client(tiny_app[0], verbose=False).view_api(return_format="dict", print_info=False)
    names = [parameter["parameter_name"] for parameter in info["named_endpoints"][endpoint]["parameters"]]
    assert names == [*own, "temperature", "top_p", "top_k", "max_new_tokens", "seed", *after]


def test_an_api_client_may_leave_out_the_context_and_every_setting(client):
    """Only what has no sensible default is required: the variants (they have one too), the question, the message."""
    outputs = client.predict(variant_ids=["tiny-lora-0"], question=QUESTION, api_name="/compare")
    text, status = page(outputs)["answers"]["tiny-lora-0"]
    assert text.strip() and "tok/s" in status, status
    messages, _, status = client.predict(variant_id="tiny-lora-0", message=QUESTION, api_name="/chat")
    assert messages[-1]["content"][0]["text"].strip() and "tok/s" in status, status


def test_long_context_shows_truncation_notice(client):
    result = compare(client, ["tiny-lora-0"], context="The pancreas makes insulin. " * 200)
    assert "input truncated" in result["answers"]["tiny-lora-0"][1]


def test_sampling_settings_take_effect(client):
    texts = {
        compare(client, ["tiny-lora-0"], temperature=1.5, max_new_tokens=8, seed=seed)["answers"]["tiny-lora-0"][0]
        for seed in range(3)
    }
    assert len(texts) > 1


def test_stop_ends_the_generation_with_its_text(tiny_app, held_answers):
    client = Client(tiny_app[0], verbose=False)
    job = client.submit(["tiny-lora-0"], QUESTION, "", *SHORT.values(), api_name="/compare")
    streamed(job, lambda outputs: "Generating" in str(outputs[1]))
    client.predict(api_name="/stop")
    answer, status = job.result()[:2]
    assert "stopped by you" in status and answer["value"]


def test_chat_turns_keep_history(client):
    chat = dict(api_name="/chat", **SHORT)
    messages, _, status = client.predict("tiny-lora-0", "What is asthma?", **chat)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"][0]["text"].strip() and "tok/s" in status
    messages, _, _ = client.predict("tiny-lora-1", "And how is it treated?", **chat)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


def test_vote_lands_in_sqlite_and_the_leaderboard(tiny_app, client):
    result = compare(client, TRIO)
    assert [choice[1] for choice in result["vote"]["choices"]] == [*TRIO, TIE, ALL_BAD]
    assert vote(client, result["id"], "tiny-lora-0")["message"].startswith("Your vote with the names shown")
    notes, table, _ = client.predict("unblinded", api_name="/leaderboard")
    rows = {row[0]: row for row in table["data"]}
    assert set(TRIO) <= set(rows) and "1 vote cast with the names shown" in notes
    database = tiny_app[1] / "data" / VOTES_FILE
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        fields = "winner, question, context, variant_ids, answers, settings, blind"
        query = f"SELECT {fields} FROM votes WHERE comparison_id = ?"
        stored = connection.execute(query, (result["id"],)).fetchall()
    [(winner, question, context, variant_ids, answers, settings, blind)] = stored
    assert (winner, question, context, json.loads(variant_ids), blind) == ("tiny-lora-0", QUESTION, CONTEXT, TRIO, 0)
    assert {a["variant_id"]: a["text"] for a in json.loads(answers)} == {
        ident: text for ident, (text, _) in result["answers"].items()
    }
    assert json.loads(settings)["max_new_tokens"] == 16
    with pytest.raises(AppError, match="already has a vote"):  # a comparison counts once
        vote(client, result["id"], ALL_BAD)
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT COUNT(*) FROM votes WHERE winner = ?", (ALL_BAD,)).fetchone()[0] == 0


def test_exports_describe_the_comparison(client):
    result = compare(client, TRIO)
    markdown, json_file = (Path(update["value"]) for update in result["files"])
    report = json.loads(json_file.read_text())
    assert report["id"] == result["id"], "the export names the comparison as a vote on it does"
    assert report["question"] == QUESTION and [a["variant_id"] for a in report["answers"]] == TRIO
    assert all(a["stats"]["new_tokens"] > 0 for a in report["answers"])
    text = markdown.read_text()
    assert QUESTION in text and all(f"`{ident}`" in text for ident in TRIO)


def test_models_table_lists_every_variant(client):
    table = client.predict(api_name="/models")
    rows = {row[0]: dict(zip(table["headers"], row, strict=True)) for row in table["data"]}
    assert rows["tiny-lora-0"]["available"] == "yes" and rows["offline-hub"]["available"] == "no"
    assert "HF_HUB_OFFLINE" in rows["offline-hub"]["why"]
    assert rows["tiny-lora-0"]["memory est."].endswith("MB")


@pytest.mark.parametrize(
    ("variants", "question", "message"),
    [
        (["tiny-lora-0"], "", "question is empty"),
        (["tiny-lora-0"], "   ", "question is empty"),
        ([], QUESTION, "No variant selected"),
        (["tiny-lora-0"], "why " * MAX_QUESTION_CHARS, "limit is 4,000"),
        ([*TRIO, "broken", "echo"], QUESTION, "at most 4"),
    ],
)
def test_bad_input_is_reported(client, variants, question, message):
    with pytest.raises(AppError, match=message):
        compare(client, variants, question)


def test_settings_out_of_range_are_reported(client):
    with pytest.raises(AppError, match=r"top_p must be between 0\.05 and 1, not 0"):
        compare(client, ["tiny-lora-0"], top_p=0)


def test_vote_without_a_comparison_is_reported(client):
    with pytest.raises(AppError, match="Run a comparison first"):
        vote(client, None, None)


def test_failing_variants_report_in_their_column_and_the_rest_answer(client):
    result = compare(client, ["tiny-lora-0", "broken"])
    answers = result["answers"]
    assert answers["tiny-lora-0"][0].strip() and "tok/s" in answers["tiny-lora-0"][1]
    assert "corrupt" in answers["broken"][1]
    assert "1 failed" in result["run"]
    again = compare(client, ["tiny-lora-0"])  # and the server keeps serving
    assert again["answers"]["tiny-lora-0"][0].strip()


def test_unavailable_variants_are_listed_apart_and_offered_nowhere(tiny_app, client):
    """Every picker offers only what runs here; what does not is listed under it with its reason, and an API call
    naming it is refused before anything runs."""
    config = Client(tiny_app[0], verbose=False).config
    pickers = [c["props"] for c in config["components"] if "choices" in c.get("props", {})]
    pickers = [props for props in pickers if props.get("label", "").startswith("Variant")]
    assert len(pickers) == 3  # Compare, Chat, Evaluate
    for picker in pickers:
        offered = [value for _, value in picker["choices"]]
        assert "tiny-lora-0" in offered and "offline-hub" not in offered, picker["label"]
    values = [str(c.get("props", {}).get("value")) for c in config["components"]]
    lists = [value for value in values if value.startswith("- Hub model (offline) `offline-hub`: ")]
    assert len(lists) == 3 and all("HF_HUB_OFFLINE" in text for text in lists)
    refused = r"Not available on this machine, so nothing was run: offline-hub \(.*HF_HUB_OFFLINE"
    with pytest.raises(AppError, match=refused):  # the page's own message, naming the variant and why
        compare(client, ["tiny-lora-0", "offline-hub"])
    with pytest.raises(AppError, match=refused):
        client.predict("offline-hub", "Hello", api_name="/chat", **SHORT)
    with pytest.raises(AppError, match=refused):
        client.predict(["offline-hub"], "sample", None, "loglik", 1, api_name="/evaluate")
    with pytest.raises(AppError, match="not in the list of choices"):  # an id that means nothing here
        compare(client, ["tiny-lora-0", "no-such-variant"])


def test_chat_without_variant_or_question_is_reported(client):
    with pytest.raises(AppError, match="No variant selected"):
        client.predict(None, "Hello", api_name="/chat", **SHORT)
    with pytest.raises(AppError, match="question is empty"):
        client.predict("tiny-lora-0", " ", api_name="/chat", **SHORT)


@pytest.mark.slow
def test_default_comparison_on_the_real_default_model(default_app):
    """The app as shipped (real registry, real default model): its default variants all answer."""
    url, studio = default_app
    defaults = default_variants(studio.registry, studio.manager)
    assert len(defaults) == 3
    result = compare(Client(url, verbose=False), defaults, max_new_tokens=24)
    assert set(result["answers"]) == set(defaults)
    assert all(text.strip() for text, _ in result["answers"].values()), result["answers"]


def test_the_served_queue_polls_gently():
    """Gradio's queue polls every 1 ms unless told otherwise; launch() slows it so generation keeps the GIL."""
    import gradio as gr

    from app import PROGRESS_POLL_S, QUEUE_POLL_S, launch
    from tests.app_server import free_port

    with gr.Blocks() as demo:
        gr.Markdown("polling")
    launch(demo, server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        assert demo._queue.sleep_when_free >= QUEUE_POLL_S >= 0.01
        assert demo._queue.progress_update_sleep_when_free >= PROGRESS_POLL_S
    finally:
        demo.close()
