"""Evaluation: the paper's zero-shot USMLE benchmark, scored honestly, and held-out loss.

``exams`` reads both exam formats, ``prompt`` builds the paper's question prompt, ``generate``
and ``loglik`` are the two scoring modes, ``scoring`` turns answers into accuracies with
intervals, ``results`` keeps a resumable record of every answer, ``report`` writes the table
and the chart, ``runner`` ties them together (the paper's numbers live in ``medalpaca_core.models.paper``), and
``perplexity`` measures the loss on held-out Medical Meadow answers.

Why one subpackage of ~3,100 lines (the others stay under 1,500): it is one job end to end, the path of an
exam from its file to its report, and its modules read in that order: where questions come from
(``loading``, ``exams``, ``formats``, ``suite``, ``shots``), how they are asked (``prompt``, ``harness``),
how they are scored (``generate``; ``loglik`` on ``forward`` and ``shared_prompt``; ``scoring``,
``statistics``), what is kept and shown (``results``, ``report``, ``runner``, ``commands``, ``folder_cache``),
and the held-out quality of answers (``perplexity``, ``answers``, ``eos``, ``repetition``). No module is over
350 lines, and that list is the map: sub-packages along it would add a level to every import without
making any module easier to find.
"""

from ..models.paper import PaperTable, load_paper_table
from .exams import BUNDLED_EXAM, Exam, ExamError, Question
from .generate import GenerateConfig
from .loading import load_exam
from .perplexity import Loss, load_pairs, variant_loss
from .results import ResultsError
from .runner import MODES, EvalConfig, EvalOutcome, default_output, run_evaluation
from .scoring import Score, parse_letter, wilson_interval

__all__ = [
    "BUNDLED_EXAM",
    "MODES",
    "EvalConfig",
    "EvalOutcome",
    "Exam",
    "ExamError",
    "GenerateConfig",
    "Loss",
    "PaperTable",
    "Question",
    "ResultsError",
    "Score",
    "default_output",
    "load_exam",
    "load_pairs",
    "load_paper_table",
    "parse_letter",
    "run_evaluation",
    "variant_loss",
    "wilson_interval",
]
