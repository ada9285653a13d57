"""Questions scored together (several in one forward pass, padded to one width) give each question's scores
as when it is scored alone, on the tiny model in float32."""

import pytest

from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import BUNDLED_EXAM, load_exam
from medalpaca_core.evaluation.loglik import BATCH_ROWS, loglik_many, loglik_records
from medalpaca_core.evaluation.prompt import PromptStyle
from medalpaca_core.models.manager import ModelManager

QUESTIONS = load_exam(BUNDLED_EXAM).questions[:5]  # different lengths: the rows of a pass are padded
VARIANTS = ["tiny", "tiny-lora-0"]


@pytest.mark.parametrize(("prompt", "choice"), [("paper", "letter"), ("paper", "text"), ("harness", "text")])
def test_questions_scored_together_equal_each_scored_alone(tiny_registry, prompt, choice):
    studio = Studio(tiny_registry, ModelManager(device="cpu"))
    style = PromptStyle(prompt, "usmle")
    together = loglik_many(studio, [(q, style) for q in QUESTIONS], VARIANTS, choice, rotate=True)
    assert len(QUESTIONS) * len(VARIANTS) * 5 > BATCH_ROWS, "more rows than one pass: the batches split"
    for question, (records, errors) in zip(QUESTIONS, together, strict=True):
        alone, alone_errors = loglik_records(studio, question, VARIANTS, choice, style, rotate=True)
        assert not errors and not alone_errors and set(records) == set(VARIANTS)
        for variant in VARIANTS:
            mine, reference = records[variant], alone[variant]
            assert (mine["parsed"], mine["parsed_norm"]) == (reference["parsed"], reference["parsed_norm"])
            assert mine["rotations"] == reference["rotations"]
            for letter, value in reference["loglik"].items():
                assert mine["loglik"][letter] == pytest.approx(value, abs=1e-4)
