"""Model, Trainer and run: full fine-tune, LoRA, or LoRA on an LLM.int8 base (the paper's three).

The Hugging Face ``Trainer`` does the loop (progress bars, periodic evaluation, checkpoints, exact
resume), so the same script runs on a laptop CPU and, unchanged, under ``accelerate launch`` on
several GPUs (DDP, FSDP, DeepSpeed ZeRO; see ``configs/accelerate``). Models load through
``medalpaca_core.models.loading`` -- the loader the app uses -- so a variant is trained on exactly the base
the app will serve it on.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from medalpaca_core.models.loading import load_pretrained, load_tokenizer, resolve_base, resolve_dtype
from medalpaca_core.models.memory import peak_rss_bytes

from . import card
from .config import FinetuneConfig, portable_base, validate, with_defaults
from .data import Collator, PreparedData, prepare
from .eos_probe import EosProbe
from .initial import KEPT_CARD, StartingAdapter, read_start, set_aside
from .result import TrainResult
from .resume import check_resume, fingerprint, write_fingerprint
from .sampler import LengthBucketSampler
from .unlikelihood import SequenceUnlikelihood

log = logging.getLogger(__name__)


class FinetuneError(RuntimeError):
    """A run that cannot start or finish; the message says what to change."""


def training_device() -> str:
    """This process's accelerator: under ``accelerate launch`` every process owns GPU LOCAL_RANK."""
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"


def build_model(config: FinetuneConfig, source: str, start: StartingAdapter | None = None) -> Any:
    """The base in its training precision, with LoRA layers unless the method is full (``start``'s trained
    weights in them when given).

    Unquantized bases load on the CPU and the Trainer (or FSDP/DeepSpeed) places them; a bitsandbytes
    base must be quantized on its final device, so it loads straight onto this process's GPU.
    """
    precision = config.resolved_precision
    device = training_device()
    if precision == "fp16-mixed" and device == "cpu":
        raise FinetuneError("precision fp16-mixed needs a GPU; on the CPU use bf16-mixed, bf16-true or fp32")
    dtype = "bfloat16" if precision == "bf16-true" else "float32"
    load_on = device if config.quantization != "none" else "cpu"
    try:
        model, _ = load_pretrained(source, config.quantization, dtype, load_on)
    except Exception as error:  # transformers raises OSError, ValueError, ... for a bad base
        raise FinetuneError(f"Could not load the base model {config.base}: {error}") from error
    model.config.use_cache = False  # the KV cache only costs memory while training
    if not config.is_lora:
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.train.gradient_checkpointing)
    elif config.train.gradient_checkpointing:
        model.enable_input_require_grads()  # frozen embeddings would otherwise cut the checkpointed graph
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as error:
        modules = config.lora.target_modules
        raise FinetuneError(f"LoRA target modules {modules} do not fit {config.base}: {error}") from None
    model.peft_config["default"].base_model_name_or_path = portable_base(config.base)
    if start is not None:
        start.load_into(model)
    return model


def unlikelihood(config: FinetuneConfig, tokenizer: Any) -> SequenceUnlikelihood | None:
    """The repetition penalty on the model's own greedy answers, when the config turns it on."""
    train = config.train
    if not train.unlikelihood_weight:
        return None
    settings = (train.unlikelihood_weight, train.unlikelihood_ngram, train.unlikelihood_new_tokens)
    return SequenceUnlikelihood(*settings, tokenizer)


def training_arguments(config: FinetuneConfig, resuming: bool) -> Any:
    train = config.train
    world = int(os.environ.get("WORLD_SIZE", 1))
    per_step = train.micro_batch_size * world
    if train.batch_size % per_step:
        raise FinetuneError(
            f"train.batch_size {train.batch_size} is not a multiple of micro_batch_size x processes ({per_step})"
        )
    precision = config.resolved_precision
    return TrainingArguments(
        output_dir=str(config.checkpoint_dir),
        per_device_train_batch_size=train.micro_batch_size,
        # The validation loss is the mean over examples of their per-token loss, whatever the batch
        # (FinetuneTrainer.prediction_step); the split is length-sorted, so batches carry little padding.
        per_device_eval_batch_size=EVAL_BATCH,
        prediction_loss_only=True,  # keeping every example's logits (49k vocabulary) would cost minutes
        gradient_accumulation_steps=train.batch_size // per_step,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=train.warmup_steps,
        weight_decay=train.weight_decay,
        optim=config.resolved_optim,
        bf16=precision == "bf16-mixed",
        fp16=precision == "fp16-mixed",
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=train.gradient_checkpointing and config.quantization == "none",
        train_sampling_strategy="random",  # group_by_length: FinetuneTrainer's own sampler (sampler.py)
        eval_strategy="steps" if train.eval_steps else "no",
        eval_steps=train.eval_steps or None,
        eval_on_start=train.eval_on_start and not resuming,  # the base's validation loss: the card's baseline
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=2,
        logging_steps=train.logging_steps,
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False if config.is_lora else None,
        remove_unused_columns=False,
        report_to="none",
        seed=train.seed,
    )


EVAL_BATCH = 8  # validation examples per forward pass: 551 of them took 12 min one at a time on 2 busy cores


class FinetuneTrainer(Trainer):
    """The Trainer with this project's training order and the EOS probe beside every validation loss.

    ``group_by_length`` uses ``LengthBucketSampler`` (similar lengths per micro-batch, micro-batches in
    random order), never transformers' sampler, whose length phases taught round 2's adapters not to stop.
    """

    def __init__(
        self,
        *args: Any,
        group_by_length: bool = False,
        eos_probe: EosProbe | None = None,
        eos_id: int | None = None,
        eos_weight: float = 1.0,
        unlikelihood: SequenceUnlikelihood | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.group_by_length = group_by_length
        self.eos_probe = eos_probe
        self.eos_id = eos_id
        self.eos_weight = eos_weight
        self.unlikelihood = unlikelihood

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if not self.group_by_length:
            return super()._get_train_sampler(dataset)
        lengths = [len(example["input_ids"]) for example in dataset]
        return LengthBucketSampler(lengths, self.args.per_device_train_batch_size, self.args.seed)

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        """The model's own loss, except that the EOS label ending each answer weighs ``eos_weight`` tokens, plus
        the unlikelihood of what the model repeats in its own greedy answers to these questions (when on).

        Normalised by the number of labelled tokens (across the accumulated micro-batches, as the model's
        loss is), so every other token keeps its weight and the logged loss stays on the same scale.
        """
        penalised = self.unlikelihood is not None and model.training
        if (self.eos_weight == 1.0 and not penalised) or self.eos_id is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        labels = inputs["labels"]
        loss = weighted_token_loss(outputs.logits, labels, self.eos_id, self.eos_weight, num_items_in_batch)
        if penalised:
            repeats = self.unlikelihood(model, self.accelerator.unwrap_model(model), inputs)
            loss = loss + self.unlikelihood.weight * repeats / labelled_tokens(labels, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(
        self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: list[str] | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Each example's own mean token loss, one per example: the evaluation loop repeats what a step
        returns batch-size times, so every example weighs the same whatever the batch (a batch's pooled
        loss would weigh examples by their answer length, and the last, shorter batch wrongly)."""
        if not prediction_loss_only:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        return example_losses(logits, inputs["labels"]), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "eval_loss" in logs and self.eos_probe is not None:
            logs["eval_eos_prob"] = self.eos_probe(self.model)
        if "loss" in logs and self.unlikelihood is not None:
            logs.update(self.unlikelihood.drain_log())
        super().log(logs, start_time)


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every position's next token, (batch, time - 1); -100 labels give 0. Computed over
    (token, vocabulary) rows: 2-4x faster than the (batch, vocabulary, time) layout."""
    targets = labels[:, 1:]
    flat = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(targets.numel(), -1), targets.reshape(-1), ignore_index=-100, reduction="none"
    )
    return flat.view_as(targets)


def example_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each row's labelled tokens (each position predicts the next; -100 is ignored), as
    the model's own loss computes it for a batch of one."""
    counted = (labels[:, 1:] != -100).sum(dim=1).clamp(min=1)
    return token_losses(logits, labels).sum(dim=1) / counted


def weighted_token_loss(
    logits: torch.Tensor, labels: torch.Tensor, eos_id: int, eos_weight: float, num_items: Any = None
) -> torch.Tensor:
    """Summed cross-entropy of the labelled tokens, EOS labels counted ``eos_weight`` times, over ``num_items``
    labelled tokens (the whole accumulated batch's; this micro-batch's when not given). Padding is labelled
    -100 by position, so only an answer's own EOS is weighted, never a pad that shares its id."""
    weights = torch.where(labels[:, 1:] == eos_id, eos_weight, 1.0)
    return (token_losses(logits, labels) * weights).sum() / labelled_tokens(labels, num_items)


def labelled_tokens(labels: torch.Tensor, num_items: Any = None) -> Any:
    """The count a summed loss is divided by: ``num_items`` (the accumulated batch's labelled tokens, from the
    Trainer) when given, else this micro-batch's labelled next-token positions."""
    return num_items if num_items is not None else (labels[:, 1:] != -100).sum()


class ThroughputMeter(TrainerCallback):
    """Times optimizer steps (forward, backward, update) only, so evaluation and saving do not
    dilute the tokens/s that compares full, LoRA and LoRA-8bit."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.tokens = 0
        self.first_step = 0  # the checkpoint's step when resumed: the run's own steps come after it
        self._started = 0.0
        self._tokens_at_start = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._tokens_at_start = state.num_input_tokens_seen  # a resumed run counts only its own tokens
        self.first_step = state.global_step

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds += time.perf_counter() - self._started
        self.tokens = state.num_input_tokens_seen - self._tokens_at_start


def prepare_output(config: FinetuneConfig) -> Path | None:
    """Check the output folder; return the checkpoint to resume from, if any.

    A finished run is never overwritten by accident, and ``--resume`` with nothing to resume is an
    error rather than a silent fresh start.
    """
    out, saved = config.output_dir, config.checkpoint_dir
    existing = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if config.resume:
        checkpoint = get_last_checkpoint(str(saved)) if saved.is_dir() else None
        if checkpoint is None:
            raise FinetuneError(f"Nothing to resume: {saved} holds no checkpoint; start without --resume")
        return Path(checkpoint)
    if existing and not config.overwrite:
        what = "a finished model" if card.VARIANT_FILE in existing else "files"
        raise FinetuneError(
            f"{out} already holds {what}; pass --resume to continue an interrupted run, --overwrite to start "
            "again, or another --output"
        )
    if existing:
        if card.VARIANT_FILE not in existing and existing != {saved.name}:
            raise FinetuneError(f"{out} holds files that finetune did not write; refusing to overwrite it")
        if int(os.environ.get("RANK", 0)) == 0:  # under accelerate launch one process clears it, not all
            clear_output(out, finished=card.VARIANT_FILE in existing)
    return None


def clear_output(out: Path, finished: bool) -> None:
    """Empty ``out`` for a fresh run; a finished model in it waits in ``set_aside(out)`` until the run saves.

    Leftovers of an interrupted run are simply deleted: the finished model it set aside is still there.
    """
    if not finished:
        shutil.rmtree(out)
        return
    kept = set_aside(out)
    shutil.rmtree(kept, ignore_errors=True)
    out.rename(kept)
    log.info("The finished model in %s waits in %s until this run has saved its own", out, kept)


def evaluate(model: Any, args: Any, data: PreparedData, collator: Collator) -> float:
    trainer = FinetuneTrainer(model=model, args=args, eval_dataset=data.validation, data_collator=collator)
    return trainer.evaluate()["eval_loss"]


def served_loss(config: FinetuneConfig, source: str, args: Any, data: PreparedData, collator: Collator) -> float | None:
    """Validation loss of the saved adapter on the base precision the app serves it on.

    Only computed when that differs from training (an adapter trained on an int8 base and served on
    the bf16 one): the card then shows what users get, not only what training saw.
    """
    from peft import PeftModel

    if not config.is_lora or config.serve_quantization == config.quantization:
        return None
    device = training_device()
    model, _ = load_pretrained(source, config.serve_quantization, resolve_dtype("auto", device), device)
    return evaluate(PeftModel.from_pretrained(model, str(config.output_dir)), args, data, collator)


def last_eval(history: list[dict[str, Any]], step: int | None = None, key: str = "eval_loss") -> float | None:
    """The validation metric ``key`` logged at ``step`` (or the latest one)."""
    values = [e[key] for e in history if key in e and (step is None or e["step"] == step)]
    return values[-1] if values else None


def store_adapter_as(folder: Path, dtype: torch.dtype) -> None:
    """Rewrite the saved LoRA weights in ``dtype`` (PEFT saves them in fp32 whatever the base)."""
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    weights = {name: tensor.to(dtype).contiguous() for name, tensor in load_file(str(path)).items()}
    save_file(weights, str(path), metadata={"format": "pt"})


def log_rank_checksum(model: Any) -> None:
    """Under ``accelerate launch``, every process logs a checksum of the weights it trained.

    Data parallelism is only right if every rank ends with the same weights (their gradients were
    averaged each step); the line makes that visible, and the multi-process test compares them.
    """
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        total = sum(float(p.detach().double().abs().sum()) for p in model.parameters() if p.requires_grad)
        log.info("rank %s of %d: trained weights checksum %.10e", os.environ.get("RANK", "?"), world, total)


def run(config: FinetuneConfig, callbacks: list[Any] | tuple = ()) -> TrainResult:
    """Train, evaluate and save one variant; ``callbacks`` are extra ``TrainerCallback``s."""
    config = with_defaults(validate(config))
    start = None if config.resume else read_start(config)  # before its folder, often the output, is cleared
    checkpoint = prepare_output(config)
    source = resolve_base(config.base)
    try:
        tokenizer = load_tokenizer(source)
    except Exception as error:  # a folder without a tokenizer, an unknown Hub id, offline Hub
        raise FinetuneError(f"Could not load the tokenizer of {config.base}: {error}") from error
    data = prepare(config.data, tokenizer)
    log.info("Data: %s", data.summary())
    this_run = fingerprint(config, source, data.train, data.validation)
    if checkpoint is not None:
        check_resume(checkpoint, this_run)  # before the model loads: a wrong checkpoint costs seconds
    elif int(os.environ.get("RANK", 0)) == 0:
        write_fingerprint(config.checkpoint_dir, this_run)
    set_seed(config.train.seed)  # LoRA's random init happens here, before the Trainer seeds anything
    model = build_model(config, source, start)
    args = training_arguments(config, resuming=checkpoint is not None)
    collator = Collator(tokenizer.pad_token_id)
    meter = ThroughputMeter()
    trainer = FinetuneTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=collator,
        callbacks=[meter, *callbacks],
        group_by_length=config.train.group_by_length,
        eos_probe=EosProbe.from_validation(data.validation, tokenizer.eos_token_id),
        eos_id=tokenizer.eos_token_id,
        eos_weight=config.train.eos_weight,
        unlikelihood=unlikelihood(config, tokenizer),
    )
    outcome = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    step = trainer.state.global_step
    if last_eval(trainer.state.log_history, step) is None:
        trainer.evaluate()
    history = trainer.state.log_history
    out = config.output_dir
    trainer.save_model(str(out))
    if config.is_lora and config.train.adapter_dtype != "float32" and args.should_save:
        store_adapter_as(out, getattr(torch, config.train.adapter_dtype))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log_rank_checksum(model)
    result = TrainResult(
        output_dir=out,
        method=config.method,
        steps=step,
        resumed_at=meter.first_step,
        train_loss=outcome.training_loss,
        val_loss_before=last_eval(history, 0),
        val_loss_after=last_eval(history),
        eos_prob_before=last_eval(history, 0, "eval_eos_prob"),
        eos_prob_after=last_eval(history, key="eval_eos_prob"),
        train_tokens=meter.tokens,
        train_seconds=meter.seconds,
        peak_rss_bytes=peak_rss_bytes(),
        peak_gpu_bytes=torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
        trainable_params=trainable,
        total_params=sum(p.numel() for p in model.parameters()),
    )
    del trainer, model
    result.served_val_loss = served_loss(config, source, args, data, collator)
    if args.should_save:
        (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; the card holds the configuration
        if not config.is_lora:
            tokenizer.save_pretrained(str(out))
        card.write_all(out, config, data, result, history)
        if start is not None and start.card is not None:
            (out / KEPT_CARD).write_text(start.card, encoding="utf-8")
        if not config.train.keep_checkpoints:
            shutil.rmtree(config.checkpoint_dir, ignore_errors=True)
        shutil.rmtree(set_aside(out), ignore_errors=True)
    log.info("%s", result.summary())
    return result
