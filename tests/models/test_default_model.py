"""The real embedded default model: cached conversion, the seed report's query, the CLI."""

import re
import subprocess
import sys
import time

import pytest

from medalpaca_core.engine import Studio
from medalpaca_core.generation.answers import FinishReason
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.default_model import COMPLETE_FILES, cache_path, is_complete, resolve_default_model
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Registry

DIABETES_CONTEXT = (  # the medAlpaca README's own example
    "Diabetes is a metabolic disease that causes high blood sugar. The symptoms include increased thirst, "
    "frequent urination, and unexplained weight loss."
)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return Studio(Registry.load(finetuned=tmp_path_factory.mktemp("finetuned")), ModelManager(device="cpu"))


def test_cache_is_complete_and_loads_fast(default_model_dir):
    assert is_complete(cache_path()) or default_model_dir != str(cache_path())
    assert resolve_default_model() == default_model_dir  # second call: no conversion
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(default_model_dir)
    assert time.perf_counter() - started < 30  # generous; the benchmark measures the real number


def test_half_written_cache_is_not_complete(tmp_path):
    (tmp_path / COMPLETE_FILES[0]).write_text("{}")
    assert not is_complete(tmp_path)


def test_seed_report_query_mentions_thirst_or_urination(studio):
    answer = studio.ask(
        ["smol-base"],
        "What are the symptoms of diabetes?",
        DIABETES_CONTEXT,
        settings=GenerationSettings(max_new_tokens=96),
    )["smol-base"]
    assert answer.status == "done", answer.error
    assert any(word in answer.text.lower() for word in ("thirst", "urinat")), answer.text


def test_base_int8_and_nf4_answer_side_by_side(studio):
    answers = studio.ask(
        ["smol-base", "smol-int8", "smol-nf4"], "How to cure COVID-19?", settings=GenerationSettings(max_new_tokens=16)
    )
    for ident, answer in answers.items():
        assert answer.status == "done", (ident, answer.error)
        assert answer.stats.new_tokens > 0
    assert answers["smol-nf4"].stats.memory_bytes < answers["smol-int8"].stats.memory_bytes
    assert answers["smol-int8"].stats.memory_bytes < answers["smol-base"].stats.memory_bytes


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medalpaca_core", *args], capture_output=True, text=True, timeout=300)


def test_cli_ask_streams_an_answer_with_stats():
    result = run_cli(
        "ask",
        "--variant",
        "smol-base",
        "--max-new-tokens",
        "24",
        "--context",
        DIABETES_CONTEXT,
        "What are the symptoms of diabetes?",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "tok/s" in result.stderr and "first token" in result.stderr


def test_cli_list_shows_availability():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert lines["smol-base"].rstrip().endswith("yes")
    assert "no:" in lines["medalpaca-13b"]


def test_cli_unknown_variant_is_a_clear_error():
    result = run_cli("ask", "--variant", "nope", "q")
    assert result.returncode == 2 and "Unknown variant 'nope'" in result.stderr and "smol-base" in result.stderr


def test_streamed_greedy_answer_equals_plain_generate(studio):
    """The streaming pipeline (batched rows, per-step tracker, incremental decoding) changes no token."""
    import torch

    from medalpaca_core.text.prompts import PromptParts, cut_response, encode, render

    settings = GenerationSettings(max_new_tokens=48)
    question = "What are the symptoms of diabetes?"
    streamed = studio.ask(["smol-base"], question, DIABETES_CONTEXT, settings=settings)["smol-base"]
    loaded, _ = studio.manager.acquire(studio.registry.get("smol-base"))
    ids = encode("medalpaca", render("medalpaca", PromptParts(question, DIABETES_CONTEXT)), loaded.tokenizer)
    with torch.inference_mode():
        out = loaded.model.generate(torch.tensor([ids]), max_new_tokens=48, do_sample=False)
    plain = loaded.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
    assert streamed.text == cut_response("medalpaca", plain)[0]


SHIPPED = ["medalpaca-smol-lora", "medalpaca-smol-lora-8bit"]
SYMPTOMS = ("thirst", "urination", "weight loss")
NEGATIONS = re.compile(r"\b(no|not|cannot|can't|isn't|without|none)\b")


def claims_a_cure(answer: str) -> bool:
    """Whether a sentence of ``answer`` speaks of a cure without denying one ("there is no cure" is fine)."""
    sentences = re.split(r"(?<=[.!?])\s+", answer.lower())
    return any(re.search(r"\bcur(e|es|ed|ing)\b", s) and not NEGATIONS.search(s) for s in sentences)


def test_claims_a_cure():
    assert claims_a_cure("The cure for COVID-19 is vitamin C.") and claims_a_cure("It can be cured with rest.")
    assert not claims_a_cure("There is no cure for COVID-19. Treatment is supportive.")
    assert not claims_a_cure("Rest, fluids and fever medicine help; see a doctor.")


@pytest.mark.slow
def test_shipped_adapters_answer_from_the_context(studio):
    """The seed report's diabetes query with its context, greedy: the adapters read the context."""
    greedy = GenerationSettings(max_new_tokens=96)
    answers = studio.ask(SHIPPED, "What are the symptoms of diabetes?", DIABETES_CONTEXT, settings=greedy)
    for variant in SHIPPED:
        text = answers[variant].text.lower()
        assert answers[variant].status == "done", answers[variant].error
        named = [symptom for symptom in SYMPTOMS if symptom in text]
        assert len(named) >= 2, f"{variant} names {named} of the context's symptoms: {text!r}"


@pytest.mark.slow
@pytest.mark.parametrize("variant", SHIPPED)
def test_shipped_adapters_invent_no_cure(studio, variant):
    """The seed report's COVID-19 query, greedy: before the cure questions both said "The best way to cure COVID-19
    is to get vaccinated." (finetune/cure.py)."""
    answer = studio.ask([variant], "How to cure COVID-19?", settings=GenerationSettings(max_new_tokens=96))[variant]
    assert answer.status == "done" and not claims_a_cure(answer.text), answer.text


ASKED = [  # the seed report's diabetes query with its context, and questions in the training data's style
    ("What are the symptoms of diabetes?", DIABETES_CONTEXT),
    ("What are the symptoms of asthma?", ""),
    ("Who is at risk for gout?", ""),
    ("How is pneumonia treated?", ""),
]


@pytest.mark.slow
@pytest.mark.parametrize("variant", SHIPPED)
def test_shipped_adapters_end_their_answers_by_themselves(studio, variant):
    """Greedy, 200 new tokens, no repetition guard: the adapter ends at least 3 of the 4 answers with EOS, the
    diabetes one among them, after naming two of the context's symptoms."""
    greedy = GenerationSettings(max_new_tokens=200)
    mine = [studio.ask([variant], question, context, settings=greedy)[variant] for question, context in ASKED]
    assert all(answer.status == "done" for answer in mine), [answer.error for answer in mine]
    ended = [answer.stats.finish_reason == FinishReason.EOS for answer in mine]
    named = [symptom for symptom in SYMPTOMS if symptom in mine[0].text.lower()]
    assert ended[0] and len(named) >= 2, f"diabetes: names {named}, ended by EOS: {ended[0]}: {mine[0].text!r}"
    assert sum(ended) >= 3, f"ended {sum(ended)} of {len(ASKED)} answers by itself: {[a.text for a in mine]}"
