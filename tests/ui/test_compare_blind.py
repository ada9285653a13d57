"""Blind comparisons and trusted votes over the API (gradio_client and raw queue events).

The public app (built as on a Space) must not name a variant in anything /compare streams before
the vote; a vote names the server-issued comparison id and a column, and every other vote is
refused and stored nowhere (counted in the database); blind and unblinded votes are rated apart.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from medalpaca_core.arena.votefile import FIELDS, read_jsonl
from medalpaca_core.arena.votes import ALL_BAD, TIE, VOTES_FILE
from tests.app_server import BASE, ECHO, SHORT, TRIO, compare, page, vote

pytest_plugins = ["tests.app_server"]  # the public_app and tiny_app fixtures

ARENA = [BASE, "tiny-lora-0", "tiny-lora-1"]
# What would give a column away: ids, registry labels, statistics that differ between variants.
REVEALING = [*ARENA, *TRIO, ECHO, "Tiny base", "Tiny LoRA", "tok/s", " MB", "first token", "quantiz", "(none)"]


def rows(home: Path) -> int:
    with sqlite3.connect(home / "data" / VOTES_FILE) as connection:
        return connection.execute("SELECT COUNT(*) FROM votes").fetchone()[0]


def raw_compare(url: str, data: list, session: str) -> list[dict]:
    """Every message the queue streams for one /compare, as a browser receives them."""
    config = httpx.get(f"{url}/config", timeout=30).json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "compare")
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    with httpx.Client(timeout=120) as http:
        http.post(f"{url}/gradio_api/queue/join", json=body).raise_for_status()
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as response:
            messages = []
            for line in response.iter_lines():
                if line.startswith("data:"):
                    messages.append(json.loads(line[5:]))
                    if messages[-1].get("msg") == "process_completed":
                        return messages
    raise AssertionError(f"no process_completed among {messages}")


def test_nothing_compare_streams_names_a_variant_before_the_vote(public_app):
    url, _ = public_app
    messages = raw_compare(url, [ARENA, "What is asthma?", "", *SHORT.values(), False], uuid.uuid4().hex)
    streamed = json.dumps(messages, ensure_ascii=False)
    assert messages[-1]["success"] and "Model C" in streamed
    assert not [word for word in REVEALING if word in streamed], [w for w in REVEALING if w in streamed]

    client = Client(url, verbose=False)
    job = client.submit(ARENA, "What is asthma?", "", *SHORT.values(), False, api_name="/compare")  # asks unblinded
    final = page(job.result())
    updates = json.dumps([page(outputs) for outputs in job.outputs()], ensure_ascii=False)
    assert not [word for word in REVEALING if word in updates]
    assert set(final["answers"]) == {"Model A", "Model B", "Model C"}, "a public app compares blind, always"
    assert not any(update["value"] for update in final["files"] if "value" in update), "exports name variants"

    revealed = vote(client, final["id"], TIE)
    assert {label.split(": ")[1] for label in revealed["answers"]} == set(ARENA)
    assert "tok/s" in json.dumps(revealed["answers"]) and "Your blind vote: **Tie**" in revealed["message"]
    notes = {label.split(": ")[1]: text for label, text in revealed["notes"].items()}
    assert all(f"(`{ident}`)" in notes[ident] for ident in ARENA)
    adapter_lines = [notes[ident].split("\n\n")[1] for ident in ARENA[1:]]
    assert all((" departs from its base " in line) or (" exactly as its base " in line) for line in adapter_lines)
    assert all(
        "What is asthma?" in prompt["value"] and "prompt tokens" in prompt["label"]
        for prompt in revealed["prompts"].values()
    )


def test_a_public_deployment_offers_no_export_of_other_visitors_votes(public_app):
    endpoints = Client(public_app[0], verbose=False).view_api(return_format="dict", print_info=False)
    assert "/leaderboard" in endpoints["named_endpoints"] and "/export_votes" not in endpoints["named_endpoints"]


def test_a_vote_names_its_comparison_and_a_column_and_is_stored_blind(public_app):
    url, home = public_app
    client = Client(url, verbose=False)
    result = compare(client, ["tiny-lora-0", "tiny-lora-1"])
    before = rows(home)
    revealed = vote(client, result["id"], "Model B")
    winner = next(label.split(": ")[1] for label in revealed["answers"] if label.startswith("Model B"))
    with sqlite3.connect(home / "data" / VOTES_FILE) as connection:
        stored = connection.execute(
            "SELECT winner, variant_ids, blind FROM votes WHERE comparison_id = ?", (result["id"],)
        ).fetchone()
    assert rows(home) == before + 1 and stored[0] == winner and stored[2] == 1
    assert json.loads(stored[1]) == [label.split(": ")[1] for label in revealed["answers"]]  # in shown order


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (lambda own, other: ("f" * 32, "Model A"), "unknown to the server"),
        (lambda own, other: (other, "Model A"), "unknown to the server"),  # another visitor's comparison
        (lambda own, other: (own, "tiny-lora-0"), "not in the list of choices"),  # a name, while names are hidden
        (lambda own, other: (own, "Model D"), "not in the list of choices"),  # no such column
        (lambda own, other: (own, None), "Pick the best answer"),
    ],
    ids=["forged-id", "other-visitors-id", "variant-name", "no-such-column", "no-choice"],
)
def test_forged_and_out_of_comparison_votes_are_refused_and_change_no_row(public_app, forge, message):
    url, home = public_app
    client, other = Client(url, verbose=False), Client(url, verbose=False)
    own_id = compare(client, ["tiny-lora-0", "tiny-lora-1", ECHO])["id"]
    other_id = compare(other, ["tiny-lora-0", ECHO])["id"]
    before = rows(home)
    with pytest.raises(AppError, match=message):
        vote(client, *forge(own_id, other_id))
    assert rows(home) == before
    vote(client, own_id, "Model A")  # the refused votes left the real one open
    assert rows(home) == before + 1


def test_a_second_vote_on_a_comparison_is_refused_and_changes_no_row(public_app):
    url, home = public_app
    client = Client(url, verbose=False)
    comparison_id = compare(client, ["tiny-lora-0", ECHO])["id"]
    vote(client, comparison_id, ALL_BAD)
    before = rows(home)
    with pytest.raises(AppError, match="already has a vote"):
        vote(client, comparison_id, "Model A")
    assert rows(home) == before


def test_voting_as_soon_as_every_column_has_text_stops_the_generation(public_app, held_answers):
    url, home = public_app
    client = Client(url, verbose=False)
    job = client.submit(TRIO[:2], "What is asthma?", "", *SHORT.values(), True, api_name="/compare")
    for outputs in job:
        shown = page(outputs)
        if shown["vote"].get("choices") and "Generating" in shown["run"]:
            break
    else:
        raise AssertionError("the vote never opened while the answers streamed")
    revealed = vote(client, shown["id"], "Model A")
    final = page(job.result())
    assert all("stopped by you" in status for _, status in final["answers"].values()), final["answers"]
    assert all(label.startswith("Model") and ": tiny-lora-" in label for label in revealed["answers"])
    with sqlite3.connect(home / "data" / VOTES_FILE) as connection:
        answers = json.loads(
            connection.execute("SELECT answers FROM votes WHERE comparison_id = ?", (shown["id"],)).fetchone()[0]
        )
    assert all(answer["text"].strip() and answer["status"] == "generating" for answer in answers)


def test_the_leaderboard_says_so_without_votes_then_rates_blind_votes_apart(tiny_app):
    client = Client(tiny_app[0], verbose=False)
    notes, table, chart = client.predict("blind", api_name="/leaderboard")  # this module's app: no vote yet
    assert notes.startswith("No blind votes yet") and not table["data"]
    assert not chart["visible"] and chart["value"] is None  # no blank chart under the sentence
    unblinded = compare(client, ["tiny-lora-0", "tiny-lora-1"])
    assert set(unblinded["answers"]) == {"tiny-lora-0", "tiny-lora-1"}, "names are shown unless blind mode is on"
    vote(client, unblinded["id"], "tiny-lora-1")
    for _ in range(2):
        blind = compare(client, ["tiny-lora-0", "tiny-lora-2"], blind=True)
        assert set(blind["answers"]) == {"Model A", "Model B"}
        vote(client, blind["id"], "Model A")
    notes, table, chart = client.predict("blind", api_name="/leaderboard")
    rated = {row[0]: row for row in table["data"]}
    assert set(rated) == {"tiny-lora-0", "tiny-lora-2"} and "nan" not in json.dumps(table).lower()
    assert notes.startswith("**2 blind votes.**") and "No variant has 5 votes yet" in notes
    assert not chart["visible"] and chart["value"] is None  # a sentence, not a chart with nothing on it
    assert all(row[1:4] == ["–", "after 5 votes", "2"] for row in rated.values()), "two votes rate nothing yet"
    _, table, _ = client.predict("unblinded", api_name="/leaderboard")
    assert {row[0] for row in table["data"]} == {"tiny-lora-0", "tiny-lora-1"}

    exported, note = client.predict(api_name="/export_votes")
    exported = Path(exported["value"])
    votes = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert all(list(record) == list(FIELDS) for record in votes) and "nothing about the voter" in note
    assert sorted(record["blind"] for record in votes) == [False, True, True]
    assert len(read_jsonl(exported).selected(blind=True)) == 2  # the CLI reads the same file


def test_unblinded_comparison_votes_by_variant_id_or_column(tiny_app):
    client = Client(tiny_app[0], verbose=False)
    result = compare(client, TRIO)
    with pytest.raises(AppError, match="not in the list of choices"):
        vote(client, result["id"], "Model A")  # the page offers the names here, and tie and all bad
    message = vote(client, result["id"], TRIO[2])["message"]
    assert message == "Your vote with the names shown: **tiny-lora-2**. Thank you!"
