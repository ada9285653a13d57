"""Fine-tuning on the tiny random LLaMA: each method learns, resume continues, masking is exact,
bad data and bad flags are reported, and what a run writes is a variant the studio can serve."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from finetune.__main__ import main
from finetune.card import LOSS_COLUMNS
from finetune.config import (
    CONFIGS_DIR,
    ConfigError,
    DataConfig,
    FinetuneConfig,
    TrainSettings,
    load_file,
    portable_base,
    resolve,
    validate,
)
from finetune.data import (
    IGNORE_INDEX,
    Collator,
    DataError,
    Source,
    encode_example,
    load_records,
    prepare,
    split,
)
from finetune.train import run
from medalpaca_core.engine import Studio
from medalpaca_core.generation.settings import GenerationSettings
from medalpaca_core.models.default_model import DEFAULT_HUB_ID
from medalpaca_core.models.loading import load_tokenizer
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Registry, Variant
from medalpaca_core.runtime.paths import ASSETS_DIR, REGISTRY_FILE
from medalpaca_core.text.prompts import PromptParts, encode, render
from medalpaca_core.text.records import QAPair

DEMO = ASSETS_DIR / "data" / "medalpaca_studio_demo.json"
QUESTION = "What are the symptoms of asthma?"


def tiny_config(tiny_dir: Path, output: Path, method: str, **train: object) -> FinetuneConfig:
    """A few steps on 48 demo records, at learning rates that move a random model visibly."""
    settings = {
        "max_steps": 6,
        "learning_rate": 1e-3 if method == "full" else 5e-2,
        "warmup_steps": 0,
        "batch_size": 8,
        "micro_batch_size": 4,
        "eval_steps": 0,
        "save_steps": 3,
        "logging_steps": 1,
        "precision": "fp32",
        **train,
    }
    return FinetuneConfig(
        method=method,
        base=str(tiny_dir),
        output=str(output),
        data=DataConfig(sources=[f"{DEMO}:48"], cutoff=128),
        train=TrainSettings(**settings),
    )


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return load_tokenizer(str(tiny_dir))


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, tiny_dir):
    """One run per method into a MEDALPACA_HOME-like finetuned/ folder, shared by several tests."""
    root = tmp_path_factory.mktemp("finetuned")
    configs = {m: tiny_config(tiny_dir, root / f"tiny-{m}", m) for m in ("full", "lora", "lora-8bit")}
    grounded = replace(configs["lora"].data, cutoff=256, context_share=0.5, cure_questions=2)  # RAFT, cure questions
    half = replace(configs["lora"].train, adapter_dtype="bfloat16")  # stored in half the bytes
    configs["lora"] = replace(configs["lora"], data=grounded, train=half)
    return {m: (run(config), root) for m, config in configs.items()}


@pytest.mark.parametrize("method", ["full", "lora", "lora-8bit"])
def test_each_method_learns_and_writes_a_complete_variant(finetuned, method, tiny_dir):
    result, _ = finetuned[method]
    out = result.output_dir
    assert result.steps == 6 and result.val_loss_after < result.val_loss_before
    assert result.train_tokens > 0 and result.tokens_per_s > 0 and result.peak_rss_bytes > 0
    weights = ["adapter_config.json", "adapter_model.safetensors"] if method != "full" else ["config.json"]
    extra = ["model.safetensors", "tokenizer.json"] if method == "full" else []
    for name in [*weights, *extra, "README.md", "loss_log.csv", "loss_curve.png", "variant.json"]:
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists() and not (out / "training_args.bin").exists()
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "README.md").read_text()
    assert ("contexts (RAFT) | 50% of the training records" in card) == (method == "lora"), card
    assert ("training examples with a context" in card) == (method == "lora")
    assert ("| cure questions | 2 copies" in card) == (method == "lora"), card
    if method != "full":
        from safetensors.torch import load_file as load_safetensors

        dtypes = {str(t.dtype) for t in load_safetensors(str(out / "adapter_model.safetensors")).values()}
        assert dtypes == {"torch.bfloat16" if method == "lora" else "torch.float32"}
    header, *rows = (out / "loss_log.csv").read_text().splitlines()
    assert header == ",".join(LOSS_COLUMNS) and len(rows) >= 8  # 6 training logs, validation at 0 and 6
    card = (out / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["base_model"] == str(tiny_dir)
    assert metadata["library_name"] == ("transformers" if method == "full" else "peft")
    assert metadata["datasets"] == ["medalpaca_studio_demo.json"]
    assert "not medical advice" in card and "demo set" in card and "| validation loss |" in card
    variant = json.loads((out / "variant.json").read_text())
    assert variant["template"] == "medalpaca" and variant["quantization"] == "none" and variant["label"]
    if method == "lora-8bit":
        assert result.served_val_loss is not None and "as the app serves it" in card


def test_eight_bit_method_trains_on_int8_layers_with_8bit_adam(tiny_dir, tmp_path):
    import bitsandbytes as bnb
    from transformers import TrainerCallback

    seen = {}

    class Inspect(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
            seen["layer"] = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
            seen["optimizer"] = optimizer

    run(tiny_config(tiny_dir, tmp_path / "int8", "lora-8bit", max_steps=1), callbacks=[Inspect()])
    assert isinstance(seen["layer"], bnb.nn.Linear8bitLt) and seen["layer"].state.threshold == 6.0
    optimizer = seen["optimizer"].optimizer  # inside accelerate's wrapper
    assert isinstance(optimizer, bnb.optim.optimizer.Optimizer8bit) and optimizer.args.optim_bits == 8


def test_saved_adapter_is_listed_and_served_by_the_studio(finetuned, tiny_dir, tmp_path):
    result, root = finetuned["lora"]
    registry = Registry.load(REGISTRY_FILE, bundled_dir=tmp_path / "no-bundled", finetuned=root)
    variant = registry.get("local/tiny-lora")
    assert variant.adapter == str(result.output_dir) and variant.base == str(tiny_dir)
    registry.add(Variant(id="tiny", label="tiny base", base=str(tiny_dir)))
    answers = Studio(registry, ModelManager(device="cpu")).ask(
        ["tiny", "local/tiny-lora"], QUESTION, settings=GenerationSettings(max_new_tokens=8)
    )
    assert all(answer.status == "done" for answer in answers.values())
    assert answers["tiny"].text != answers["local/tiny-lora"].text, "the trained adapter must change the answer"
    assert json.loads((result.output_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        tiny_dir
    )


def test_full_model_folder_is_listed_as_its_own_base(finetuned, tmp_path):
    result, root = finetuned["full"]
    variant = Registry.load(REGISTRY_FILE, bundled_dir=tmp_path, finetuned=root).get("local/tiny-full")
    assert variant.base == str(result.output_dir) and variant.adapter is None


def test_default_output_is_where_the_app_looks(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDALPACA_HOME", str(tmp_path))
    config = resolve({"method": "lora", "data": {"sources": ["x.json"]}}, {})
    assert config.output_dir == tmp_path / "finetuned" / "medalpaca-smol-lora"
    assert replace(config, name="mine").output_dir == tmp_path / "finetuned" / "mine"
    assert replace(config, name="mine", output=str(tmp_path / "elsewhere")).variant_name == "elsewhere"


def test_default_base_is_written_as_its_hub_id():
    assert portable_base("@default") == DEFAULT_HUB_ID
    assert portable_base("/home/x/.cache/medalpaca-studio/models/SmolLM2-135M-Instruct") == DEFAULT_HUB_ID
    assert portable_base("huggyllama/llama-7b") == "huggyllama/llama-7b"


def test_resume_continues_from_the_checkpoint_without_repeating(tiny_dir, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    batches: list[tuple] = []
    original = Collator.__call__
    config = tiny_config(tiny_dir, tmp_path / "reference", "lora", max_steps=4, save_steps=2)
    validation = {tuple(e["input_ids"]) for e in prepare(config.data, load_tokenizer(str(tiny_dir))).validation}

    def recording(self, features):
        if tuple(features[0]["input_ids"]) not in validation:  # training micro-batches, not validation batches
            batches.append(tuple(tuple(f["input_ids"]) for f in features))
        return original(self, features)

    monkeypatch.setattr(Collator, "__call__", recording)

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt  # the run dies after step 3; checkpoint-2 is on disk

    class FirstStep(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            started.append(state.global_step)

    reference = run(config)
    uninterrupted = batches[:8]  # 4 steps x 2 micro-batches (accelerate's loader also reads one batch ahead)

    batches.clear()
    interrupted = replace(config, output=str(tmp_path / "resumed"))
    with pytest.raises(KeyboardInterrupt):
        run(interrupted, callbacks=[Interrupt()])
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-2").is_dir()

    batches.clear()
    started: list[int] = []
    resumed = run(replace(interrupted, resume=True), callbacks=[FirstStep()])
    assert started == [2] and resumed.steps == 4
    assert batches[:4] == uninterrupted[4:], "the resumed run must feed exactly the batches of steps 3 and 4"
    log = (tmp_path / "resumed" / "loss_log.csv").read_text().splitlines()[1:]
    train_steps = [int(row.split(",")[0]) for row in log if row.split(",")[2]]
    assert train_steps == [1, 2, 3, 4]
    assert reference.resumed_at == 0 and resumed.resumed_at == 2
    card = (tmp_path / "resumed" / "README.md").read_text()
    assert "resumed an interrupted one from its step-2 checkpoint" in card and "steps 3-4" in card
    assert "resumed an interrupted one" not in (tmp_path / "reference" / "README.md").read_text()
    assert resumed.val_loss_before == pytest.approx(reference.val_loss_before)
    assert resumed.val_loss_after == pytest.approx(reference.val_loss_after, rel=1e-6)


def test_masking_covers_exactly_the_prompt_and_the_padding(tokenizer):
    record = QAPair("Answer this question truthfully", QUESTION, "Wheezing and shortness of breath.")
    prompt_ids = encode("medalpaca", render("medalpaca", PromptParts(question=QUESTION), tokenizer), tokenizer)
    masked = encode_example(record, tokenizer, "medalpaca", cutoff=256, train_on_inputs=False)
    ids, labels = masked["input_ids"], masked["labels"]
    assert ids[: len(prompt_ids)] == prompt_ids, "training must see the prompt exactly as inference builds it"
    assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert labels[len(prompt_ids) :] == ids[len(prompt_ids) :] and ids[-1] == tokenizer.eos_token_id

    learnt = encode_example(record, tokenizer, "medalpaca", cutoff=256, train_on_inputs=True)
    assert learnt["labels"] == learnt["input_ids"] == ids
    cut = encode_example(record, tokenizer, "medalpaca", cutoff=len(prompt_ids) + 3, train_on_inputs=False)
    assert len(cut["input_ids"]) == len(prompt_ids) + 3 and cut["input_ids"][-1] != tokenizer.eos_token_id
    assert encode_example(record, tokenizer, "medalpaca", cutoff=len(prompt_ids), train_on_inputs=False) is None

    batch = Collator(tokenizer.pad_token_id)([masked, cut])
    short = len(cut["input_ids"])
    assert batch["labels"][0].tolist() == labels  # the EOS shares the pad id and is still learnt
    assert batch["labels"][1, short:].eq(IGNORE_INDEX).all() and batch["attention_mask"][1, short:].eq(0).all()
    assert batch["attention_mask"][1, :short].eq(1).all() and batch["labels"][1, :short].tolist() == cut["labels"]


def test_malformed_records_are_reported_with_index_and_reason(tmp_path, tokenizer):
    good = {"instruction": "Answer this question truthfully", "input": "What is gout?", "output": "A arthritis."}
    listed = tmp_path / "bad.json"
    listed.write_text(json.dumps([good, {"input": "q"}, "text", {**good, "input": 3}, {**good, "output": " "}]))
    lines = tmp_path / "bad.jsonl"
    lines.write_text(json.dumps(good) + "\n{not json\n\n" + json.dumps({**good, "input": "Other?"}) + "\n")
    with pytest.raises(DataError) as caught:
        load_records([Source.parse(str(listed)), Source.parse(str(lines))], seed=42, skip_malformed=False)
    message = str(caught.value)
    assert "5 malformed records" in message and "--skip-malformed" in message
    for expected in (
        "bad.json, record 1: missing key 'output'",
        "bad.json, record 2: expected an object",
        "bad.json, record 3: 'input' is int, not text",
        "bad.json, record 4: 'output' is empty",
        "bad.jsonl, record 1: line 2 is not JSON",
    ):
        assert expected in message
    data = prepare(DataConfig(sources=[str(listed), str(lines)], skip_malformed=True), tokenizer)
    assert len(data.problems) == 5 and "5 malformed records skipped" in data.summary()
    assert data.used == {"bad.json": 1, "bad.jsonl": 2}


def test_sources_mix_with_caps_and_split_keeps_repeated_questions_together(tmp_path):
    def write(name: str, questions: list[str]) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps([{"instruction": "i", "input": q, "output": "a"} for q in questions]))
        return path

    first = write("a.json", [f"q{n}" for n in range(30)])
    second = write("b.json", [f"r{n % 10}" for n in range(40)])  # every question four times
    sources = [Source.parse(f"{first}:12"), Source.parse(str(second))]
    read = load_records(sources, seed=42, skip_malformed=False)
    records = read.pairs
    assert read.used == {"a.json": 12, "b.json": 40} and len(records) == 52
    again = load_records([Source.parse(f"{first}:12")], seed=42, skip_malformed=False).pairs
    assert again == records[:12], "a cap is a seeded sample"
    train, validation = split(records, 0.1, seed=42)
    assert len(train) + len(validation) == 52 and validation
    assert not {r.input for r in train} & {r.input for r in validation}


def test_hub_dataset_offline_is_a_clear_error():
    source = Source.parse("medalpaca/medical_meadow_wikidoc:10000")
    assert (source.location, source.cap, source.is_hub) == ("medalpaca/medical_meadow_wikidoc", 10000, True)
    with pytest.raises(DataError, match=r"Cannot load the dataset medalpaca/medical_meadow_wikidoc .*HF_HUB_OFFLINE"):
        load_records([source], seed=42, skip_malformed=False)


def test_bundled_demo_set_is_complete():
    records = json.loads(DEMO.read_text())
    assert len(records) >= 150 and len({r["input"] for r in records}) == len(records)
    assert all(set(r) == {"instruction", "input", "output"} and r["input"] and r["output"] for r in records)


@pytest.mark.parametrize("path", sorted(CONFIGS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_configs_are_valid(path):
    config = validate(resolve(load_file(path), {}))  # validate: run's one check of choices and ranges
    assert config.data.cutoff == 256
    if path.stem.startswith("medalpaca-smol-lora"):  # the shipped adapters: RAFT data, every linear projection
        assert config.data.context_share > 0
        assert len(config.lora.target_modules) == 7 and config.lora.r == 16
    else:
        assert config.lora.r == 8 and config.lora.alpha == 16
    if path.stem.startswith("paper"):
        assert (config.train.learning_rate, config.train.warmup_steps, config.train.batch_size) == (2e-5, 100, 128)
        assert config.train.lr_scheduler == "cosine" and config.train.epochs == 3


def test_accelerate_configs_load_in_accelerate():
    from accelerate.commands.config.config_args import ClusterConfig

    paths = {p.stem: p for p in (CONFIGS_DIR / "accelerate").glob("*.yaml")}
    kinds = {name: str(ClusterConfig.from_yaml_file(path).distributed_type) for name, path in paths.items()}
    assert kinds == {
        "ddp": "DistributedType.MULTI_GPU",
        "fsdp": "DistributedType.FSDP",
        "deepspeed-zero2": "DistributedType.DEEPSPEED",
        "deepspeed-zero3": "DistributedType.DEEPSPEED",
    }
    for stage in (2, 3):
        settings = json.loads((CONFIGS_DIR / "accelerate" / f"ds_zero{stage}.json").read_text())
        assert settings["zero_optimization"]["stage"] == stage and settings["train_batch_size"] == "auto"


def test_yaml_numbers_and_unknown_keys(tmp_path):
    config = resolve({"method": "lora", "data": {"sources": ["x.json"]}, "train": {"learning_rate": "2e-5"}}, {})
    assert config.train.learning_rate == 2e-5
    with pytest.raises(ConfigError, match=r"unknown keys \['learnig_rate'\]"):
        resolve({"method": "lora", "data": {"sources": ["x.json"]}, "train": {"learnig_rate": 1}}, {})
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected a whole number"):
        resolve({"method": "lora", "data": {"sources": ["x.json"]}, "train": {"batch_size": 1.5}}, {})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "x.json"], "method is missing; choose one of full, lora, lora-8bit"),
        (["--method", "lora"], "No training data: pass --data"),
        (["--method", "lora", "--data", "x.json", "--batch-size", "10"], "must be a multiple of"),
        (["--method", "lora", "--data", "x.json", "--cutoff", "4"], "data.cutoff must be at least 16"),
        (["--config", "no-such-config"], "Cannot read config file no-such-config"),
        (["--method", "lora", "--data", "x.json", "--resume", "--overwrite"], "contradict"),
        (["--method", "lora", "--data", "x.json", "--cure-questions", "-1"], "data.cure_questions must be >= 0"),
    ],
)
def test_cli_rejects_bad_settings_with_a_clear_message(argv, message, capsys, tmp_path):
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_cli_checks_the_data_settings_before_writing_the_validation_split(tmp_path, capsys):
    out = tmp_path / "validation.json"
    argv = ["--method", "lora", "--data", str(DEMO), "--cutoff", "4", "--write-validation", str(out)]
    assert main(argv) == 2
    assert "data.cutoff must be at least 16" in capsys.readouterr().err and not out.exists()


def test_cli_rejects_bad_data_and_outputs_before_loading_a_model(tiny_dir, tmp_path, capsys):
    common = ["--method", "lora", "--base", str(tiny_dir)]
    assert main([*common, "--data", str(tmp_path / "missing.json"), "--output", str(tmp_path / "a")]) == 2
    assert "missing.json: no such file, and not a Hugging Face dataset id" in capsys.readouterr().err
    assert main([*common, "--data", str(DEMO), "--output", str(tmp_path / "b"), "--resume"]) == 2
    assert "Nothing to resume" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    assert main([*common, "--data", str(DEMO), "--output", str(tmp_path / "c")]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert main([*common, "--data", str(DEMO), "--output", str(tmp_path / "c"), "--overwrite"]) == 2
    assert "did not write; refusing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--method", "qlora"])  # argparse lists the choices
    assert "invalid choice: 'qlora'" in capsys.readouterr().err


def test_accelerate_launch_two_cpu_processes_train_one_adapter(tiny_dir, tmp_path):
    """The multi-GPU path, proven on two CPU processes (gloo): both ranks end with the same weights.

    ``accelerate launch --cpu`` starts one process whatever ``--num_processes`` says; the
    multi-process launcher (torchrun under ``--multi_gpu``) runs the ranks on the CPU when there is no GPU.
    """
    from safetensors.torch import load_file as load_safetensors

    out = tmp_path / "ddp-adapter"
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"),
        *("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "finetune"),
        *("--method", "lora", "--base", str(tiny_dir), "--data", f"{DEMO}:48", "--output", str(out)),
        *("--max-steps", "2", "--batch-size", "4", "--micro-batch-size", "2", "--eval-steps", "0", "--cutoff", "64"),
        *("--precision", "fp32", "--learning-rate", "1e-2", "--warmup-steps", "0"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    checksums = dict(re.findall(r"rank (\d) of 2: trained weights checksum (\S+)", done.stderr))
    assert set(checksums) == {"0", "1"}, done.stderr[-3000:]
    assert checksums["0"] == checksums["1"], "gradients were averaged: both ranks hold the same adapter"
    saved = load_safetensors(str(out / "adapter_model.safetensors"))
    assert sum(float(t.double().abs().sum()) for t in saved.values()) == pytest.approx(float(checksums["0"]), rel=1e-6)
    assert json.loads((out / "variant.json").read_text())["template"] == "medalpaca"


@pytest.mark.parametrize(("native", "lora", "full"), [(True, "bf16-true", "bf16-mixed"), (False, "fp32", "fp32")])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch, tmp_path, native, lora, full):
    monkeypatch.setattr("finetune.config.pick_device", lambda: "cpu")
    monkeypatch.setattr("finetune.config.cpu_computes_bf16", lambda: native)
    config = FinetuneConfig(method="lora", base="@default", output=str(tmp_path), data=DataConfig(sources=["x.json"]))
    assert config.resolved_precision == lora
    assert replace(config, method="full").resolved_precision == full
    assert replace(config, method="lora-8bit").resolved_precision == "fp32"
