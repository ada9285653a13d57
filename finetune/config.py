"""What a fine-tuning run is: three dataclasses, read from a YAML file and overridden from the command line.

The defaults are the paper's settings (Han et al. 2023, medAlpaca's ``train.py``): cutoff 256 tokens,
lr 2e-5 with a cosine schedule and 100 warm-up steps, 3 epochs, global batch 128 reached by gradient
accumulation, LoRA r=8 / alpha=16 / dropout 0.1 on ``q_proj`` and ``v_proj``. A YAML file sets any of
them (sections ``data``, ``lora``, ``train``); a command-line flag beats the file. Every value is
checked here, so a typo fails before a model is loaded, with a message naming the key.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from medalpaca_core.models.default_model import DEFAULT_ALIAS, DEFAULT_HUB_ID, is_default_model
from medalpaca_core.models.loading import cpu_computes_bf16, pick_device
from medalpaca_core.models.registry import QUANTIZATIONS
from medalpaca_core.runtime.paths import finetuned_dir
from medalpaca_core.text.grounding import Grounding, GroundingError
from medalpaca_core.text.prompts import TEMPLATES
from medalpaca_core.text.records import Source

METHODS = ("full", "lora", "lora-8bit")
PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16-true", "fp16-mixed")
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A configuration value that is missing, unknown or out of range; the message names it."""


@dataclass(frozen=True)
class DataConfig:
    """Which records to train on and how they become token sequences."""

    sources: list[str] = field(
        default_factory=list,
        metadata={
            "flag": "--data",
            "metavar": "SPEC",
            "help": "JSON/JSONL file or Hugging Face dataset id, optionally ':N' to cap it at N records "
            "(repeat the flag to mix sources)",
        },
    )
    template: str = field(default="medalpaca", metadata={"help": "prompt template", "choices": TEMPLATES})
    cutoff: int = field(default=256, metadata={"help": "maximum tokens per example (prompt + answer)"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of the questions held out for validation"})
    split_seed: int = field(default=42, metadata={"help": "seed of the validation split and of per-source caps"})
    train_on_inputs: bool = field(default=False, metadata={"help": "also learn the prompt tokens"})
    skip_malformed: bool = field(default=False, metadata={"help": "skip malformed records instead of stopping"})
    context_share: float = field(
        default=0.0,
        metadata={"help": "share of training records given a RAFT context: gold passage among distractors (0: none)"},
    )
    context_distractors: int = field(default=2, metadata={"help": "distractor passages in each context (k)"})
    context_no_gold: float = field(
        default=0.2, metadata={"help": "share of the contexts that leave the record's own passage out"}
    )
    context_passage_chars: int = field(
        default=400, metadata={"help": "a context passage is cut to whole sentences within this many characters"}
    )
    cure_questions: int = field(
        default=0,
        metadata={
            "help": "copies of the cure questions derived from training answers: those that say whether a "
            "condition can be cured, and the outlook answers (finetune/cure.py; 0: none)"
        },
    )

    def grounding(self) -> Grounding:
        """The RAFT context settings (seeded like the split, so a config always yields the same data)."""
        return Grounding(
            share=self.context_share,
            distractors=self.context_distractors,
            no_gold_share=self.context_no_gold,
            passage_chars=self.context_passage_chars,
            seed=self.split_seed,
        )


@dataclass(frozen=True)
class LoraSettings:
    """LoRA's shape (ignored by ``--method full``)."""

    r: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA input"})
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "v_proj"], metadata={"help": "layers that get an adapter"}
    )


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation, precision, evaluation and checkpointing."""

    epochs: float = field(default=3.0, metadata={"help": "passes over the training split"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (-1: use epochs)"})
    learning_rate: float = field(default=2e-5, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up steps"})
    batch_size: int = field(default=128, metadata={"help": "global batch (examples per optimizer step)"})
    micro_batch_size: int = field(default=4, metadata={"help": "examples per forward pass and device"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    optim: str = field(
        default="auto", metadata={"help": "transformers optimizer name; auto: adamw_bnb_8bit for lora-8bit"}
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "weights and compute: auto picks bf16-mixed (full), bf16-true (lora), fp32 (lora-8bit)",
            "choices": PRECISIONS,
        },
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})
    group_by_length: bool = field(
        default=False, metadata={"help": "micro-batches of similar length, in random order (finetune/sampler.py)"}
    )
    eos_weight: float = field(
        default=1.0,
        metadata={
            "help": "loss weight of the EOS label that ends each answer (1: plain cross-entropy); it is one "
            "label of ~100 per answer, so a model can learn the answers well and still not where they end"
        },
    )
    unlikelihood_weight: float = field(
        default=0.0,
        metadata={
            "help": "sequence-level unlikelihood (finetune/unlikelihood.py): each step the model answers its "
            "micro-batch's questions greedily and every token of an n-gram it repeats costs this times "
            "-log(1 - p), on the scale of an answer token's cross-entropy (0: off)"
        },
    )
    unlikelihood_ngram: int = field(default=4, metadata={"help": "n of the repeated n-grams that are penalised"})
    unlikelihood_new_tokens: int = field(
        default=96, metadata={"help": "length of the greedy answers the repeats are looked for in"}
    )
    eval_steps: int = field(default=200, metadata={"help": "evaluate every N steps (0: only at start and end)"})
    eval_on_start: bool = field(
        default=True, metadata={"help": "validate the untrained base first (the card's baseline; off saves one pass)"}
    )
    save_steps: int = field(default=200, metadata={"help": "checkpoint every N steps"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every N steps"})
    seed: int = field(default=42, metadata={"help": "seed of initialisation and shuffling"})
    keep_checkpoints: bool = field(default=False, metadata={"help": "keep checkpoints/ after a finished run"})
    adapter_dtype: str = field(
        default="float32",
        metadata={
            "help": "dtype the LoRA weights are stored in: bfloat16 halves the file (the app computes in bf16)",
            "choices": ("float32", "bfloat16"),
        },
    )


@dataclass(frozen=True)
class FinetuneConfig:
    """One run: method, base, output and the three sections."""

    method: str = field(default="", metadata={"help": "how to fine-tune", "choices": METHODS})
    base: str = field(default=DEFAULT_ALIAS, metadata={"help": "Hub id, local folder or @default"})
    output: str = field(default="", metadata={"help": "output folder (default: MEDALPACA_HOME/finetuned/NAME)"})
    name: str = field(
        default="",
        metadata={"help": "folder under MEDALPACA_HOME/finetuned, the app's local/NAME (ignored with --output)"},
    )
    label: str = field(default="", metadata={"help": "label shown in the app"})
    description: str = field(default="", metadata={"help": "description shown in the app"})
    serve_quantization: str = field(
        default="none", metadata={"help": "precision the app loads the base in", "choices": QUANTIZATIONS}
    )
    init_adapter: str = field(
        default="",
        metadata={
            "help": "start from this trained LoRA adapter folder (same base and LoRA shape) instead of a fresh "
            "LoRA: a further phase of a finished run; it may be OUTPUT itself"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in OUTPUT"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished model in OUTPUT"})
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    @property
    def is_lora(self) -> bool:
        return self.method != "full"

    @property
    def quantization(self) -> str:
        """The precision the base is trained in: LLM.int8 for lora-8bit, else as loaded."""
        return "int8" if self.method == "lora-8bit" else "none"

    @property
    def variant_name(self) -> str:
        """The folder's name, which is also the app's variant id (``local/NAME`` under finetuned/)."""
        if self.output:
            return Path(self.output).name
        return self.name or f"medalpaca-{base_slug(self.base)}-{self.method}"

    @property
    def output_dir(self) -> Path:
        return Path(self.output).expanduser() if self.output else finetuned_dir() / self.variant_name

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    @property
    def resolved_precision(self) -> str:
        """'auto' -> fp32 master weights with bf16 compute for full, a bf16 frozen base for LoRA, where the
        hardware computes bf16 (a GPU, or a CPU with AVX512-BF16/AMX); fp32 elsewhere (emulated bf16 is ~5x slower).

        lora-8bit keeps fp32 around its int8 layers: ``prepare_model_for_kbit_training`` upcasts
        every non-int8 weight to fp32 anyway.
        """
        if self.train.precision != "auto":
            return self.train.precision
        if pick_device() == "cpu" and not cpu_computes_bf16():
            return "fp32"
        return {"full": "bf16-mixed", "lora": "bf16-true", "lora-8bit": "fp32"}[self.method]

    @property
    def resolved_optim(self) -> str:
        """The paper's optimizers: AdamW, and bitsandbytes' block-wise 8-bit AdamW for lora-8bit."""
        if self.train.optim != "auto":
            return self.train.optim
        return "adamw_bnb_8bit" if self.method == "lora-8bit" else "adamw_torch"


def base_slug(base: str) -> str:
    """A short folder-friendly name of the base ('smol' for the embedded default)."""
    if portable_base(base) == DEFAULT_HUB_ID:
        return "smol"
    return Path(base.rstrip("/")).name.lower().replace("_", "-")


def portable_base(base: str) -> str:
    """The base as written into adapter_config.json and the card: the Hub id for the embedded default.

    The converted default model lives in a per-machine cache folder; its Hub id works everywhere
    (the registry maps it back to ``@default``).
    """
    if is_default_model(base):
        return DEFAULT_HUB_ID
    return base


# --- building dataclasses from plain values (YAML, command line) --------------------------------


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Check and convert one value to the field's annotated type (YAML reads '2e-5' as a string)."""
    origin = typing.get_origin(kind)
    if origin is list:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(item, typing.get_args(kind)[0], where) for item in items]
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if kind is int and not number.is_integer():
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return kind(number)
    if kind is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return str(value)
    raise TypeError(f"{where}: no conversion for type {kind}")  # a field of a type this module does not know


def build(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """``cls`` from a (nested) mapping; unknown keys and wrong types raise a ConfigError."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown keys {unknown}; known keys: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        key = f"{where}.{name}" if where else name
        kind = hints[name]
        kwargs[name] = build(kind, value, key) if is_dataclass(kind) else _coerce(value, kind, key)
    return cls(**kwargs)


def _deep_update(target: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        both_dicts = isinstance(value, dict) and isinstance(target.get(key), dict)
        target[key] = _deep_update(dict(target[key]), value) if both_dicts else value
    return target


def resolve(file_values: dict[str, Any], overrides: dict[str, Any]) -> FinetuneConfig:
    """The run's configuration: defaults, then the YAML file, then the command line (nested mappings).

    Types are checked here; choices and ranges once, by ``validate``, which ``train.run`` calls."""
    return build(FinetuneConfig, _deep_update(dict(file_values), overrides))


def load_file(path: str | Path) -> dict[str, Any]:
    """A YAML config as a mapping; a bare name is looked up in ``finetune/configs/``."""
    candidate = Path(path).expanduser()
    if not candidate.exists() and (CONFIGS_DIR / f"{path}.yaml").is_file():
        candidate = CONFIGS_DIR / f"{path}.yaml"
    try:
        document = yaml.safe_load(candidate.read_text(encoding="utf-8"))
    except OSError as error:
        known = ", ".join(sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")))
        raise ConfigError(f"Cannot read config file {path}: {error.strerror}; bundled configs: {known}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"Config file {path} is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"Config file {path}: expected a mapping of settings")
    return document


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_choices(section: Any, where: str) -> None:
    for spec in fields(section):
        value, choices = getattr(section, spec.name), spec.metadata.get("choices")
        if is_dataclass(value):
            _check_choices(value, f"{where}{spec.name}.")
        elif choices and value not in choices:
            what = f"{value!r} is unknown" if value else "is missing"
            raise ConfigError(f"{where}{spec.name} {what}; choose one of {', '.join(choices)}")


def validate(config: FinetuneConfig) -> FinetuneConfig:
    """Choices, ranges and consistency: what a type alone cannot express."""
    data, lora, train = config.data, config.lora, config.train
    _check_choices(config, "")
    _check(bool(config.base.strip()), "base is empty: pass --base with a Hub id, a local folder or @default")
    _check(bool(data.sources), "No training data: pass --data with a JSON/JSONL file or a dataset id")
    _check(data.cutoff >= 16, f"data.cutoff must be at least 16 tokens, got {data.cutoff}")
    try:
        data.grounding().check()
    except GroundingError as error:
        raise ConfigError(f"data: {error}") from None
    _check(data.cure_questions >= 0, f"data.cure_questions must be >= 0 copies, got {data.cure_questions}")
    _check(0 < data.val_fraction < 1, f"data.val_fraction must be between 0 and 1, got {data.val_fraction}")
    _check(lora.r > 0 and lora.alpha > 0, "lora.r and lora.alpha must be positive")
    _check(0 <= lora.dropout < 1, f"lora.dropout must be in [0, 1), got {lora.dropout}")
    _check(bool(lora.target_modules), "lora.target_modules is empty")
    _check(train.learning_rate > 0, f"train.learning_rate must be positive, got {train.learning_rate}")
    _check(train.eos_weight > 0, f"train.eos_weight must be positive, got {train.eos_weight}")
    _check(train.unlikelihood_weight >= 0, f"train.unlikelihood_weight must be >= 0, got {train.unlikelihood_weight}")
    _check(train.unlikelihood_ngram >= 2, f"train.unlikelihood_ngram must be >= 2, got {train.unlikelihood_ngram}")
    _check(
        train.unlikelihood_new_tokens >= train.unlikelihood_ngram,
        f"train.unlikelihood_new_tokens ({train.unlikelihood_new_tokens}) must be at least train.unlikelihood_ngram",
    )
    _check(
        not (train.unlikelihood_weight and data.train_on_inputs),
        "train.unlikelihood_weight needs data.train_on_inputs off: the penalty continues each example's prompt",
    )
    _check(not config.init_adapter or config.is_lora, "init_adapter starts a LoRA run; --method full has no adapter")
    _check(train.epochs > 0 or train.max_steps > 0, "Give train.epochs > 0 or train.max_steps > 0")
    _check(train.micro_batch_size > 0, f"train.micro_batch_size must be positive, got {train.micro_batch_size}")
    _check(
        train.batch_size % train.micro_batch_size == 0 and train.batch_size >= train.micro_batch_size,
        f"train.batch_size ({train.batch_size}) must be a multiple of train.micro_batch_size "
        f"({train.micro_batch_size}): the difference is made up by gradient accumulation",
    )
    _check(min(train.warmup_steps, train.eval_steps) >= 0, "train.warmup_steps and train.eval_steps must be >= 0")
    _check(min(train.save_steps, train.logging_steps) > 0, "train.save_steps and train.logging_steps must be > 0")
    _check(not (config.resume and config.overwrite), "--resume and --overwrite contradict each other; pick one")
    return config


METHOD_NAMES = {"full": "Full fine-tune", "lora": "LoRA", "lora-8bit": "LoRA trained on an LLM.int8 base"}


def with_defaults(config: FinetuneConfig) -> FinetuneConfig:
    """Fill the label and description the app shows from what the run is."""
    sources = ", ".join(Source.parse(spec).name for spec in config.data.sources)
    description = f"{METHOD_NAMES[config.method]} of {portable_base(config.base)} on {sources}."
    return replace(config, label=config.label or config.variant_name, description=config.description or description)
