"""The report's wording: a verdict per McNemar row, and acc_norm only where it can differ from acc."""

import pytest

from medalpaca_core.engine import Studio
from medalpaca_core.evaluation import BUNDLED_EXAM, EvalConfig, load_exam, run_evaluation
from medalpaca_core.evaluation.report import DIFFER, NO_EVIDENCE, statistics_markdown
from medalpaca_core.models.manager import ModelManager


def pair(p_value: float) -> dict:
    return {"a": "x · loglik", "b": "y · loglik", "n": 20, "a_only": 6, "b_only": 1, "p_value": p_value}


def test_each_mcnemar_row_has_its_own_verdict():
    text = statistics_markdown({"mcnemar": [pair(0.15), pair(0.0129), pair(0.05)]})
    assert f"| 0.1500 | {NO_EVIDENCE} |" in text
    assert f"| 0.0129 | {DIFFER} |" in text
    assert f"| 0.0500 | {NO_EVIDENCE} |" in text  # "below 0.05" is strict
    assert "the two runs differ beyond chance on these questions" not in text  # no verdict above the rows


@pytest.mark.parametrize(("choice", "norm_shown"), [("letter", False), ("text", True)])
def test_acc_norm_is_shown_only_where_option_texts_are_scored(tiny_registry, tmp_path, choice, norm_shown):
    studio = Studio(tiny_registry, ModelManager(device="cpu"))
    exam = load_exam(BUNDLED_EXAM)
    config = EvalConfig(modes=("loglik",), limit=1, choice=choice)
    outcome = run_evaluation(studio, ["tiny"], exam, tmp_path / choice, config)
    report = (tmp_path / choice / "results.md").read_text()
    assert bool(outcome.norm_scores) is norm_shown
    assert ("| tiny | loglik acc_norm |" in report) is norm_shown
    assert ("acc_norm is not shown: letters were scored" in report) is not norm_shown
