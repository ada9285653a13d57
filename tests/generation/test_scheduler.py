"""The running batch: rows join at the next step and leave when they end, each answering as it would alone.

Every test drives the scheduler from its step hook (which runs in the worker between steps), so what joins
or leaves at which step is decided by the test, never by timing.
"""

import threading

import pytest

from medalpaca_core.engine import Studio
from medalpaca_core.generation.decoding import Row
from medalpaca_core.generation.scheduler import BatchScheduler, SchedulerBusy, SchedulerConfig
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.memory import MemoryRefusal
from medalpaca_core.text.prompts import PromptParts, cut_response, encode, render

GREEDY = GenerationSettings(max_new_tokens=10)
HOT = GenerationSettings(max_new_tokens=10, temperature=1.5, seed=7)
QUESTIONS = ["What are the symptoms of diabetes?", "What is asthma?", "How is a fracture of the wrist treated?"]


@pytest.fixture
def studio(tiny_registry):
    return Studio(tiny_registry, ModelManager(device="cpu"))


def row(studio, variant_id, question=QUESTIONS[0], label=None):
    """The row the studio would submit for ``variant_id`` (labelled ``label`` to tell repeated variants apart)."""
    variant = studio.variant(variant_id)
    loaded, adapter = studio.acquire(variant)
    ids = encode(variant.template, render(variant.template, PromptParts(question)), loaded.tokenizer)
    return Row(label or variant_id, ids, adapter, variant.template)


class Run:
    """Submissions to one scheduler, with every answer each one reported."""

    def __init__(self, scheduler):
        self.scheduler, self.answers, self.tickets = scheduler, {}, []

    def submit(self, rows, settings=GREEDY, cancel=None):
        ticket = self.scheduler.submit(rows, settings, cancel or threading.Event(), self.record)
        self.tickets.append(ticket)
        return ticket

    def record(self, answer):
        self.answers[answer.variant_id] = answer

    def wait(self):
        for ticket in self.tickets:
            assert ticket.done.wait(120)
        return self.answers


def alone(studio, variant_id, question=QUESTIONS[0], settings=GREEDY):
    run = Run(BatchScheduler(studio.acquire(studio.variant(variant_id))[0]))
    run.submit([row(studio, variant_id, question)], settings)
    return run.wait()[variant_id]


def scheduler_with_plan(studio, plan, config=None):
    """A scheduler of the tiny base whose hook calls ``plan[step](run, rows_decoded)`` after that step."""
    loaded, _ = studio.acquire(studio.variant("tiny"))
    steps: list[list[str]] = []
    scheduler = BatchScheduler(loaded, config)
    run = Run(scheduler)

    def hook(step, rows):
        steps.append(rows)
        if step in plan:
            plan[step](run, rows)

    scheduler.on_step = hook
    return run, steps


def test_rows_joining_at_different_steps_answer_as_alone(studio):
    cases = [("tiny", QUESTIONS[0]), ("tiny-lora-0", QUESTIONS[1]), ("tiny-lora-1", QUESTIONS[2])]
    expected = {variant_id: alone(studio, variant_id, question) for variant_id, question in cases}
    rows = {variant_id: row(studio, variant_id, question) for variant_id, question in cases}
    plan = {2: lambda run, _: run.submit([rows["tiny-lora-0"]]), 5: lambda run, _: run.submit([rows["tiny-lora-1"]])}
    run, steps = scheduler_with_plan(studio, plan)
    run.submit([rows["tiny"]])
    answers = run.wait()
    assert "tiny-lora-0" in steps[2] and "tiny-lora-1" in steps[5], "each joined at the step after it came"
    assert max(len(rows) for rows in steps) == 3, "rows of the base and of two adapters decoded together"
    for variant_id, _ in cases:
        assert answers[variant_id].text == expected[variant_id].text, variant_id
        assert answers[variant_id].stats.new_tokens == expected[variant_id].stats.new_tokens
    assert len({answer.text for answer in answers.values()}) == 3


def test_greedy_alone_is_what_generate_gives(studio):
    import torch

    loaded, adapter = studio.acquire(studio.variant("tiny-lora-0"))
    ids = row(studio, "tiny-lora-0").prompt_ids
    with loaded.lock, loaded.rows_adapters([adapter]), torch.inference_mode():
        out = loaded.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=10, do_sample=False)
    text = loaded.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
    assert alone(studio, "tiny-lora-0").text == cut_response("medalpaca", text)[0]


def test_seeded_sampling_is_the_same_in_any_batch(studio):
    expected = alone(studio, "tiny-lora-0", settings=HOT).text
    others = GenerationSettings(max_new_tokens=10, temperature=1.5, seed=1)
    rows = [row(studio, "tiny", QUESTIONS[1], label=f"other-{n}") for n in range(2)]
    plan = {
        1: lambda run, _: run.submit([row(studio, "tiny-lora-0")], HOT),
        3: lambda run, _: run.submit(rows[1:], others),
    }
    run, _ = scheduler_with_plan(studio, plan)
    run.submit(rows[:1], others)
    assert run.wait()["tiny-lora-0"].text == expected
    assert alone(studio, "tiny-lora-0", settings=HOT).text == expected
    other_seed = GenerationSettings(**{**HOT.__dict__, "seed": 8})
    assert alone(studio, "tiny-lora-0", settings=other_seed).text != expected


def test_a_cancelled_row_leaves_at_the_next_step_and_the_others_go_on(studio):
    long = GenerationSettings(max_new_tokens=40)
    expected = alone(studio, "tiny-lora-1", settings=long)
    gone = threading.Event()
    plan = {3: lambda run, rows: gone.set()}
    run, steps = scheduler_with_plan(studio, plan)
    run.submit([row(studio, "tiny-lora-0")], long, cancel=gone)  # a client that leaves mid-answer
    run.submit([row(studio, "tiny-lora-1")], long)
    answers = run.wait()
    assert "tiny-lora-0" in steps[2] and all("tiny-lora-0" not in rows for rows in steps[3:])
    cancelled = answers["tiny-lora-0"].stats
    assert cancelled.finish_reason == "cancelled" and cancelled.new_tokens == 4, "4 tokens in 3 steps, none after"
    assert answers["tiny-lora-1"].text == expected.text


def test_a_prompt_longer_than_the_window_fails_alone(studio):
    expected = alone(studio, "tiny")
    too_long = row(studio, "tiny", "why " * 600, label="too-long")
    run, _ = scheduler_with_plan(studio, {1: lambda run, _: run.submit([too_long])})
    run.submit([row(studio, "tiny")])
    answers = run.wait()
    assert answers["too-long"].status == "error" and "context window of 512 tokens" in answers["too-long"].error
    assert answers["tiny"].text == expected.text


def test_a_row_whose_adapter_is_unloaded_while_it_waits_fails_alone(studio):
    expected = alone(studio, "tiny")
    doomed = row(studio, "tiny-lora-1")
    loaded, _ = studio.acquire(studio.variant("tiny"))

    def unload(run, _):
        run.submit([doomed])
        loaded.model.delete_adapter(doomed.adapter)

    run, steps = scheduler_with_plan(studio, {2: unload})
    run.submit([row(studio, "tiny")])
    answers = run.wait()
    failed = answers["tiny-lora-1"]
    assert failed.status == "error" and "unloaded while the request waited" in failed.error
    assert answers["tiny"].text == expected.text and all("tiny-lora-1" not in rows for rows in steps)


def test_the_manager_releases_no_base_while_it_serves_rows(tiny_registry):
    needed = ModelManager(device="cpu").estimate_for(tiny_registry.get("tiny")).bytes
    studio = Studio(tiny_registry, ModelManager(device="cpu", budget_bytes=int(needed * 1.5)))  # room for one base
    refusals = []

    def load_another(run, _):
        try:
            studio.acquire(studio.variant("tiny-nf4"))
        except MemoryRefusal as error:
            refusals.append(str(error))

    run, _ = scheduler_with_plan(studio, {2: load_another})
    run.submit([row(studio, "tiny")])
    assert run.wait()["tiny"].status == "done"
    assert refusals and "Not enough memory to load tiny-nf4" in refusals[0], "the serving base was not released"
    studio.acquire(studio.variant("tiny-nf4"))  # the batch is over: the idle base makes room
    assert [model.key.quantization for model in studio.manager.loaded()] == ["nf4"]


def test_a_flood_is_refused_beyond_the_line_and_served_first_come_first_served(studio):
    config = SchedulerConfig(max_rows=2, max_waiting=4)
    first = row(studio, "tiny", label="first")
    flood = [row(studio, "tiny", QUESTIONS[n % 3], label=f"r{n}") for n in range(5)]
    refused = []

    def arrive(run, _):
        for length, item in enumerate(flood, start=3):
            try:
                run.submit([item], GenerationSettings(max_new_tokens=length))
            except SchedulerBusy as error:
                refused.append((item.variant_id, str(error)))

    run, steps = scheduler_with_plan(studio, {1: arrive}, config)
    run.submit([first], GenerationSettings(max_new_tokens=20))
    answers = run.wait()
    assert [name for name, _ in refused] == ["r4"] and "busy" in refused[0][1]
    assert all(answers[f"r{n}"].status == "done" for n in range(4)) and answers["first"].stats.new_tokens == 20
    assert max(len(rows) for rows in steps) == 2, "never more rows than the cap"
    joined = [next(index for index, rows in enumerate(steps) if f"r{n}" in rows) for n in range(4)]
    assert joined == sorted(joined), "earlier arrivals never wait behind later ones"


def test_concurrent_studio_requests_share_one_batch(studio):
    scheduler = studio.scheduler(studio.variant("tiny"))
    submitted, sizes, second, threads = threading.Event(), [], {}, []
    submit = scheduler.submit

    def submitting(*args, **kwargs):
        ticket = submit(*args, **kwargs)
        submitted.set()
        return ticket

    def hook(step, rows):
        sizes.append(len(rows))
        if step == 1:  # a second request arrives while the first is mid-answer
            submitted.clear()
            ask = lambda: second.update(studio.ask(["tiny-lora-0"], QUESTIONS[1], settings=GREEDY))  # noqa: E731
            threads.append(threading.Thread(target=ask))
            threads[0].start()
            assert submitted.wait(60)

    scheduler.submit, scheduler.on_step = submitting, hook
    first = studio.ask(["tiny"], QUESTIONS[0], settings=GenerationSettings(max_new_tokens=30))
    assert first["tiny"].status == "done" and max(sizes) == 2, "the second request joined the running batch"
    threads[0].join(60)
    assert second["tiny-lora-0"].text == alone(studio, "tiny-lora-0", QUESTIONS[1]).text
