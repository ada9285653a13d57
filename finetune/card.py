"""What a run leaves beside its weights: model card, loss log, loss curve and ``variant.json``.

The card is a Hugging Face model card (YAML metadata, then Markdown) that says what the model is,
how it was trained, how well it did against its base, and whose data it learnt from -- the
licences travel with the weights. ``variant.json`` is what the registry reads, so the app lists the
variant as soon as the folder exists.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from medalpaca_core.models.default_model import DEFAULT_HUB_ID
from medalpaca_core.models.registry import VARIANT_FILE
from medalpaca_core.runtime.paths import ASSETS_DIR, BUNDLED_ADAPTERS_DIR, finetuned_dir

from .config import METHOD_NAMES, FinetuneConfig, portable_base
from .data import PreparedData
from .initial import KEPT_CARD
from .result import TrainResult

CARD_FILE = "README.md"
LOSS_LOG = "loss_log.csv"
LOSS_CURVE = "loss_curve.png"
LOSS_COLUMNS = (
    "step",
    "epoch",
    "train_loss",
    "val_loss",
    "val_eos_prob",
    "own_repeat_share",
    "learning_rate",
    "tokens_seen",
)

MEDALPACA_NOTE = (
    "Medical Meadow, the medAlpaca project's data (github.com/kbressem/medAlpaca, GPL-3.0); each "
    "subset also keeps the licence of its origin, see its dataset card."
)
WIKIDOC_NOTE = "The text derives from WikiDoc (www.wikidoc.org), licensed CC BY-SA; this model passes on the credit."
DEMO_NOTE = "The MedAlpaca Studio demo set (assets/data), written for this project; a demo, not medical advice."
BASE_NOTES = {DEFAULT_HUB_ID: f"Base model {DEFAULT_HUB_ID}: Apache-2.0."}
# Local files whose Hub origin is known, so the card's metadata can name a dataset id.
KNOWN_ORIGINS = {"medical_meadow_small.train.json": "medalpaca/medical_meadow_wikidoc_patient_information"}


def licence_notes(config: FinetuneConfig, data: PreparedData) -> list[str]:
    """Credits owed by this model: its base, medAlpaca's data (GPL-3.0), WikiDoc's text (CC BY-SA)."""
    notes = [BASE_NOTES.get(portable_base(config.base), f"Base model {config.base}: see its own licence.")]
    names = [source.name.lower() for source in data.sources]
    if any("medical_meadow" in name or name.startswith("medalpaca/") for name in names):
        notes.append(MEDALPACA_NOTE)
    if any("wikidoc" in name or KNOWN_ORIGINS.get(name, "").endswith("wikidoc_patient_information") for name in names):
        notes.append(WIKIDOC_NOTE)
    if any(Path(source.location).resolve().is_relative_to(ASSETS_DIR / "data") for source in data.sources):
        notes.append(DEMO_NOTE)
    return notes


def loss_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per logged training loss or validation loss, from the Trainer's log history."""
    rows = []
    for entry in history:
        if "loss" not in entry and "eval_loss" not in entry:
            continue  # the final summary (train_runtime, ...)
        rows.append(
            {
                "step": entry["step"],
                "epoch": round(entry.get("epoch", 0.0), 4),
                "train_loss": entry.get("loss", ""),
                "val_loss": entry.get("eval_loss", ""),
                "val_eos_prob": entry.get("eval_eos_prob", ""),
                "own_repeat_share": entry.get("own_repeat_share", ""),
                "learning_rate": entry.get("learning_rate", ""),
                "tokens_seen": entry.get("num_input_tokens_seen", ""),
            }
        )
    return rows


def write_loss_log(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOSS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def plot_losses(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: cards are written on servers and in tests
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for column, style, label in (("train_loss", "-", "training"), ("val_loss", "o--", "validation")):
        points = [(row["step"], row[column]) for row in rows if row[column] != ""]
        if points:
            axes.plot(*zip(*points, strict=True), style, label=label)
    axes.set(xlabel="optimizer step", ylabel="loss (cross-entropy per answer token)", title=title)
    axes.grid(alpha=0.3)
    handles = axes.get_legend_handles_labels()
    stops = [(row["step"], row["val_eos_prob"]) for row in rows if row["val_eos_prob"] != ""]
    if stops:  # a run that unlearns stopping shows it here, while its loss still falls
        right = axes.twinx()
        right.plot(*zip(*stops, strict=True), "s:", color="tab:red", label="P(EOS) after validation answers")
        right.set(ylabel="P(EOS) after the gold answer", ylim=(0, 1))
        handles = tuple(a + b for a, b in zip(handles, right.get_legend_handles_labels(), strict=True))
    axes.legend(*handles, loc="upper right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def where_listed(folder: Path) -> tuple[str, str]:
    """The id the app gives this folder, and a sentence saying so (bundled: NAME, fine-tuned: local/NAME)."""
    parent = folder.resolve().parent
    if parent == BUNDLED_ADAPTERS_DIR.resolve():
        return folder.name, f"MedAlpaca Studio lists this bundled folder as variant `{folder.name}`"
    ident = f"local/{folder.name}"
    if parent == finetuned_dir().resolve():
        return ident, f"MedAlpaca Studio lists this folder as variant `{ident}`"
    return ident, f"Copied into `$MEDALPACA_HOME/finetuned/`, this folder is listed as variant `{ident}`"


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _resumed(result: TrainResult) -> list[str]:
    """A paragraph saying which steps the run's own figures cover, when it resumed a checkpoint."""
    if not result.resumed_at:
        return []
    return [
        f"This run resumed an interrupted one from its step-{result.resumed_at} checkpoint: the average training "
        f"loss, the tokens and the throughput below are of steps {result.resumed_at + 1}-{result.steps}; the loss "
        "log and curve cover every step.",
        "",
    ]


def _own_repeats(config: FinetuneConfig, rows: list[dict[str, Any]]) -> list[str]:
    """With unlikelihood on: how often the model's own greedy answers repeated, first and last log."""
    shares = [row["own_repeat_share"] for row in rows if row["own_repeat_share"] != ""]
    if not config.train.unlikelihood_weight or not shares:
        return []
    return [
        f"The training loss includes the unlikelihood term. Of the model's own greedy answers to its training "
        f"questions, {shares[0]:.1%} repeated a sentence or looped in the first logged steps, {shares[-1]:.1%} "
        f"in the last (`own_repeat_share` in `{LOSS_LOG}`).",
        "",
    ]


def render_card(
    folder: Path, config: FinetuneConfig, data: PreparedData, result: TrainResult, rows: list[dict[str, Any]]
) -> str:
    base = portable_base(config.base)
    datasets = list(dict.fromkeys(KNOWN_ORIGINS.get(s.name, s.name) for s in data.sources))
    metadata = {
        "base_model": base,
        "library_name": "peft" if config.is_lora else "transformers",
        "pipeline_tag": "text-generation",
        "license": "other",
        "datasets": datasets,
        "tags": ["medical", "medalpaca", "medalpaca-studio", config.method],
    }
    train, lora, prompt_tokens = config.train, config.lora, "learnt" if config.data.train_on_inputs else "masked"
    accumulation = train.batch_size // train.micro_batch_size
    examples = result.steps * train.batch_size
    hyper = [
        ("method", METHOD_NAMES[config.method]),
        ("base model", f"{base} ({'LLM.int8, threshold 6.0' if config.quantization == 'int8' else 'unquantized'})"),
        ("precision", config.resolved_precision),
        ("optimizer", config.resolved_optim),
        ("learning rate", f"{train.learning_rate:g}, {train.lr_scheduler}, {train.warmup_steps} warm-up steps"),
        ("batch", f"{train.batch_size} ({train.micro_batch_size} x {accumulation} accumulation steps per device)"),
        ("length", f"{result.steps} steps = {examples:,} examples ({examples / len(data.train):.2f} epochs)"),
        ("cutoff", f"{config.data.cutoff} tokens; prompt tokens {prompt_tokens}"),
        ("prompt template", f"{config.data.template} (medalpaca_core.text.prompts.render)"),
    ]
    if train.eos_weight != 1:
        hyper.append(
            ("loss", f"cross-entropy per answer token; the EOS ending each answer counts {train.eos_weight:g}x")
        )
    if train.unlikelihood_weight:
        hyper.append(
            (
                "unlikelihood",
                f"each micro-batch's questions answered greedily ({train.unlikelihood_new_tokens} tokens); every "
                f"token of a repeated {train.unlikelihood_ngram}-gram costs {train.unlikelihood_weight:g} x "
                "-log(1 - p) (Welleck et al. 2020, finetune/unlikelihood.py)",
            )
        )
    if config.init_adapter:
        hyper.append(("started from", f"the trained adapter in `{config.init_adapter}` (its card: `{KEPT_CARD}`)"))
    if config.data.context_share:
        d = config.data
        hyper.append(
            (
                "contexts (RAFT)",
                f"{d.context_share:.0%} of the training records: own passage among {d.context_distractors} "
                f"distractor passages, {d.context_no_gold:.0%} of them without it; passages cut within "
                f"{d.context_passage_chars} chars",
            )
        )
    if config.data.cure_questions:
        hyper.append(
            (
                "cure questions",
                f"{config.data.cure_questions} copies of the cure questions derived from training answers: those "
                "that say whether their condition can be cured, and the outlook answers (finetune/cure.py)",
            )
        )
    if config.is_lora:
        modules = ", ".join(lora.target_modules)
        hyper.append(("LoRA", f"r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout:g}, on {modules}"))
    trained = "LLM.int8" if config.quantization == "int8" else "unquantized"
    served = "unquantized" if config.serve_quantization == "none" else config.serve_quantization
    before = "the starting adapter" if config.init_adapter else "base model"
    results = [
        (f"{before} ({trained}, as trained)", result.val_loss_before, result.eos_prob_before),
        (f"this model ({trained} base, as trained)", result.val_loss_after, result.eos_prob_after),
    ]
    if result.served_val_loss is not None:
        results.append((f"this model ({served} base, as the app serves it)", result.served_val_loss, None))
    ident, listed = where_listed(folder)
    first_train = next((row["train_loss"] for row in rows if row["train_loss"] != ""), None)
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        f"# {config.label}",
        "",
        config.description,
        "",
        "> **Research demo, not medical advice.** This model makes things up. Never use its answers for a",
        "> diagnosis or treatment; consult a health professional.",
        "",
        "## Use",
        "",
        f"{listed}; for example",
        "",
        "```bash",
        f'python -m medalpaca_core ask --variant {ident} "What are the symptoms of diabetes?"',
        "```",
        "",
        f"Prompts must be built by `medalpaca_core.text.prompts.render` with the `{config.data.template}` template:",
        "the model learnt that exact format.",
        "",
        "## Training data",
        "",
        f"{data.summary()}. Validation: {config.data.val_fraction:.0%} of the distinct questions "
        f"(seed {config.data.split_seed}).",
        "",
        "## Hyperparameters",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in hyper],
        "",
        "## Results",
        "",
        "Validation loss: cross-entropy per answer token, averaged over the validation examples. P(EOS): the",
        "probability the model gives the end of the answer right after a validation example's gold answer",
        "(mean over up to 64 of them): a model that cannot stop has a low one whatever its loss.",
        "",
        "| model | validation loss | P(EOS) after the gold answer |",
        "|---|---|---|",
        *[f"| {who} | {_number(loss)} | {_number(eos, 3)} |" for who, loss, eos in results if loss is not None],
        "",
        *_resumed(result),
        *_own_repeats(config, rows),
        f"Training loss: {_number(first_train)} at the first log, "
        f"{_number(result.train_loss)} averaged over the run. Throughput {result.tokens_per_s:,.0f} tokens/s "
        f"over {result.train_tokens:,} training tokens; peak memory {result.peak_rss_bytes / 2**20:,.0f} MiB RSS. "
        f"Trainable parameters: {result.trainable_params:,} of {result.total_params:,}.",
        "",
        f"![loss curve]({LOSS_CURVE})",
        "",
        f"The full log is in `{LOSS_LOG}`.",
        "",
        "## Reproduce",
        "",
        "Save this configuration as a YAML file and run `python -m finetune --config FILE`:",
        "",
        "```yaml",
        yaml.safe_dump(reproducible(config), sort_keys=False).strip(),
        "```",
        "",
        "## Licence notes",
        "",
        *[f"- {note}" for note in licence_notes(config, data)],
        "",
    ]
    return "\n".join(lines)


def reproducible(config: FinetuneConfig) -> dict[str, Any]:
    """The configuration as a YAML mapping, without the one-off switches of this invocation."""
    values = asdict(config)
    for switch in ("resume", "overwrite"):
        values.pop(switch)
    return values


def write_all(
    folder: Path, config: FinetuneConfig, data: PreparedData, result: TrainResult, history: list[dict[str, Any]]
) -> None:
    """Loss log, loss curve, model card and variant.json into ``folder``."""
    rows = loss_rows(history)
    write_loss_log(folder / LOSS_LOG, rows)
    plot_losses(folder / LOSS_CURVE, rows, config.label)
    (folder / CARD_FILE).write_text(render_card(folder, config, data, result, rows), "utf-8")
    variant = {
        "label": config.label,
        "description": config.description,
        "template": config.data.template,
        "quantization": config.serve_quantization,
    }
    (folder / VARIANT_FILE).write_text(json.dumps(variant, indent=2) + "\n", encoding="utf-8")
