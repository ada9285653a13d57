"""The one prompt builder: exact medAlpaca and model-card formats, chat template, response cutting."""

import pytest

from medalpaca_core.text.prompts import PRIMER, PromptError, PromptParts, cut_response, render


def test_medalpaca_format_is_exact():
    parts = PromptParts("What is a fever?", instruction="Answer this question truthfully")
    assert render("medalpaca", parts) == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request."
        "\n\n### Instruction:\nAnswer this question truthfully"
        "\n\n### Input:\nWhat is a fever?"
        "\n\n### Response:\n"
    )


def test_medalpaca_puts_context_before_question_and_primes_response():
    parts = PromptParts("Which option?", context="A patient has a cough.", response_prefix="The Answer is:")
    text = render("medalpaca", parts)
    assert text.startswith(PRIMER)
    assert "### Input:\nA patient has a cough.\n\nWhich option?\n\n### Response:\nThe Answer is:" in text


def test_context_qa_matches_model_card():
    parts = PromptParts("What are the symptoms of diabetes?", context="Diabetes is a disease.")
    assert render("context_qa", parts) == (
        "Context: Diabetes is a disease.\n\nQuestion: What are the symptoms of diabetes?\n\nAnswer: "
    )
    assert render("context_qa", PromptParts("How to cure COVID-19?")) == "Question: How to cure COVID-19?\n\nAnswer: "


def test_chat_template_uses_tokenizer_and_history(default_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    parts = PromptParts("And the treatment?", history=(("What is flu?", "A viral infection."),))
    text = render("chat", parts, tokenizer)
    assert text.index("What is flu?") < text.index("A viral infection.") < text.index("And the treatment?")
    assert text.endswith("<|im_start|>assistant\n")


def test_chat_without_tokenizer_is_a_clear_error():
    with pytest.raises(PromptError, match="tokenizer"):
        render("chat", PromptParts("q"))


def test_history_becomes_transcript_for_instruction_templates():
    text = render("medalpaca", PromptParts("Why?", history=(("Hi", "Hello"),)))
    assert "User: Hi\nAssistant: Hello\n\nWhy?" in text


@pytest.mark.parametrize("question", ["", "   \n"])
def test_empty_question_is_rejected(question):
    with pytest.raises(PromptError, match="empty"):
        render("medalpaca", PromptParts(question))


def test_unknown_template_names_the_known_ones():
    with pytest.raises(PromptError, match="medalpaca, context_qa, chat"):
        render("alpaca-v2", PromptParts("q"))


@pytest.mark.parametrize(
    ("template", "generated", "expected", "finished"),
    [
        ("medalpaca", " Thirst and urination.\n\n### Instruction:\nMore", "Thirst and urination.", True),
        ("medalpaca", "Full prompt...### Response:\nEchoed answer", "Echoed answer", False),
        ("medalpaca", "Still going", "Still going", False),
        ("context_qa", "Rest and fluids.\n\nQuestion: next one", "Rest and fluids.", True),
        ("chat", "Hello<|im_end|>junk", "Hello", True),
    ],
)
def test_cut_response(template, generated, expected, finished):
    assert cut_response(template, generated) == (expected, finished)
