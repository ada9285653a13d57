"""lm-evaluation-harness through the API beside the studio's own ``eval``: how often they pick the same option.

    .venv/bin/python -m benchmarks.harness_agreement [--questions 100]

Issue 24's target: on 100 four-option MedQA-shape questions, lm-eval's ``local-completions`` model running
the shipped task (``assets/harness/medqa_4options_text.yaml``: the harness's MedQA text, each option scored
by its text) against a live ``/v1`` and ``eval --prompt harness --choice text`` pick the same option on at
least 99% of the questions, for ``smol-base`` and ``medalpaca-smol-lora`` (moonshot: 100%, and the 8-bit
adapter too). The questions are generated (``eval_loglik.generated_questions``, seeded, MedQA's length)
since the real MedQA is not on the machine; what is compared is two scoring paths of the same model, not
its medicine. Both ``acc`` (summed log-likelihood) and ``acc_norm`` (per character/byte) picks are compared.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.common import Row, free_port, whole_number_options
from benchmarks.eval_loglik import generated_questions
from medalpaca_core.engine import Studio
from medalpaca_core.evaluation.exams import Question
from medalpaca_core.evaluation.loglik import loglik_records
from medalpaca_core.evaluation.prompt import PromptStyle
from medalpaca_core.runtime.paths import PROJECT_ROOT

TASK_FILE = PROJECT_ROOT / "assets" / "harness" / "medqa_4options_text.yaml"
TASK = "medqa_4options_text"
SHIPPED_DATA = "assets/exams/medical-suite/medqa_4options_test.jsonl"
LETTERS = "ABCD"
VARIANTS = ("smol-base", "medalpaca-smol-lora", "medalpaca-smol-lora-8bit")  # ~3 min each for 100 questions here
COMMAND = "python -m benchmarks.harness_agreement"


def write_medqa(questions: list[Question], path: Path) -> Path:
    """The questions as JSON Lines in the Hub's MedQA shape (``sent1``, ``ending0-3``, ``label``)."""
    lines = []
    for question in questions:
        endings = {f"ending{n}": question.options[letter] for n, letter in enumerate(LETTERS)}
        row = {"id": question.key, "sent1": question.text, **endings, "label": LETTERS.index(question.answer)}
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def task_folder(data: Path, folder: Path) -> Path:
    """A copy of the shipped task file that reads ``data`` instead of the bundled sample."""
    folder.mkdir(parents=True, exist_ok=True)
    text = TASK_FILE.read_text(encoding="utf-8").replace(SHIPPED_DATA, str(data))
    (folder / TASK_FILE.name).write_text(text, encoding="utf-8")
    return folder


def harness_picks(base_url: str, model: str, tokenizer: str, folder: Path, batch_size: int = 8) -> list[dict]:
    """lm-eval's ``local-completions`` on the task in ``folder``: per document (in file order), the option
    its ``acc`` picks, the one its ``acc_norm`` picks, and the options' log-likelihoods."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    arguments = {
        "model": model,
        "base_url": f"{base_url}/v1/completions",
        "tokenizer": tokenizer,
        "tokenizer_backend": "huggingface",
        "batch_size": batch_size,
    }
    results = lm_eval.simple_evaluate(
        model="local-completions",
        model_args=arguments,
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(folder)),
        log_samples=True,
    )
    picks = []
    for sample in sorted(results["samples"][TASK], key=lambda sample: sample["doc_id"]):
        logliks = [loglik for loglik, _ in sample["filtered_resps"]]
        choices = [sample["doc"][f"ending{n}"] for n in range(len(LETTERS))]
        per_char = [loglik / len(choice) for loglik, choice in zip(logliks, choices, strict=True)]
        picks.append(
            {
                "acc": LETTERS[logliks.index(max(logliks))],
                "acc_norm": LETTERS[per_char.index(max(per_char))],
                "loglik": dict(zip(LETTERS, logliks, strict=True)),
            }
        )
    return picks


def studio_picks(studio: Studio, questions: list[Question], variant: str) -> list[dict]:
    """The studio's ``eval --prompt harness --choice text`` on the same questions, in the same shape."""
    picks = []
    for question in questions:
        records, errors = loglik_records(studio, question, [variant], "text", PromptStyle("harness", "medqa"))
        if errors:
            raise RuntimeError(errors[variant])
        record = records[variant]
        picks.append({"acc": record["parsed"], "acc_norm": record["parsed_norm"], "loglik": record["loglik"]})
    return picks


def agreement(ours: list[dict], theirs: list[dict], metric: str) -> float:
    return sum(a[metric] == b[metric] for a, b in zip(ours, theirs, strict=True)) / len(ours)


@contextmanager
def served(studio: Studio) -> Iterator[str]:
    """``python -m medalpaca_core serve`` in this process (no rate limit): yields the base URL."""
    import uvicorn

    from medalpaca_core.serving.openai_api import ApiConfig, create_app
    from medalpaca_core.serving.ratelimit import RateLimiter

    port = free_port()
    config = uvicorn.Config(create_app(studio, RateLimiter(None), ApiConfig()), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    while not server.started and thread.is_alive():
        ready.wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def compared(studio: Studio, url: str, variant: str, questions: list[Question], folder: Path) -> Row:
    """One variant's agreement row: the harness through ``url`` beside the studio's own scores."""
    tokenizer = studio.acquire(studio.variant(variant))[0].tokenizer.name_or_path
    theirs = harness_picks(url, variant, tokenizer, folder)
    ours = studio_picks(studio, questions, variant)
    gap = max(abs(a["loglik"][k] - b["loglik"][k]) for a, b in zip(ours, theirs, strict=True) for k in LETTERS)
    same, same_norm = agreement(ours, theirs, "acc"), agreement(ours, theirs, "acc_norm")
    name = f"lm-eval local-completions vs eval --prompt harness --choice text ({variant})"
    detail = (
        f"{len(questions)} generated 4-option questions; acc_norm picks {same_norm:.0%} the same; largest option "
        f"log-likelihood gap {gap:.4f} (target >= 99%)"
    )
    return Row("evaluation", name, f"{same:.0%} same pick", detail, f"{COMMAND} --questions {len(questions)}")


def rows(count: int = 100, variants: tuple[str, ...] = VARIANTS) -> list[Row]:
    import tempfile

    studio = Studio()
    questions = generated_questions(count)
    scratch = Path(tempfile.mkdtemp())
    folder = task_folder(write_medqa(questions, scratch / "medqa.jsonl"), scratch / "task")
    with served(studio) as url:
        return [compared(studio, url, variant, questions, folder) for variant in variants]


def main() -> None:
    table = rows(whole_number_options(__doc__, questions=100).questions)
    print("\n".join(row.table_line() for row in table))


if __name__ == "__main__":
    main()
