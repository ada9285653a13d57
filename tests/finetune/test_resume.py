"""Resume guards (finetune.resume) on the tiny LLaMA: a checkpoint from another base, other settings or
other data, or one left truncated, is refused with what differs; never trained on silently."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import TrainerCallback

from finetune.__main__ import main
from finetune.config import FinetuneConfig, LoraSettings
from finetune.resume import FINGERPRINT_FILE, ResumeError, check_resume
from finetune.train import run
from tests.finetune.test_train import DEMO, tiny_config
from tests.tiny import build_tiny_llama


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt  # the run dies after step 3; checkpoint-2 is on disk


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, tiny_dir) -> FinetuneConfig:
    """A LoRA run killed after step 3, its checkpoint-2 and fingerprint on disk."""
    config = tiny_config(tiny_dir, tmp_path_factory.mktemp("interrupted") / "run", "lora", max_steps=4, save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        run(config, callbacks=[Interrupt()])
    return config


@pytest.fixture
def resumable(interrupted, tmp_path) -> FinetuneConfig:
    """A copy of the interrupted run that a test may change or break, configured to resume."""
    shutil.copytree(interrupted.output_dir, tmp_path / "run")
    return replace(interrupted, output=str(tmp_path / "run"), resume=True)


def checkpoint(config: FinetuneConfig) -> Path:
    return config.checkpoint_dir / "checkpoint-2"


def test_a_run_writes_its_fingerprint_beside_its_checkpoints(interrupted):
    saved = json.loads((interrupted.checkpoint_dir / FINGERPRINT_FILE).read_text())
    assert saved["settings"]["lora.r"] == 8 and saved["settings"]["method"] == "lora"
    assert saved["data"]["training examples"] > 0 and saved["base"]["config_sha256"]


def test_other_settings_are_named(resumable):
    changed = replace(resumable, lora=LoraSettings(r=4), train=replace(resumable.train, learning_rate=1e-2))
    with pytest.raises(ResumeError) as refused:
        run(changed)
    message = str(refused.value)
    assert "it belongs to another run" in message and "--overwrite" in message
    assert "settings lora.r: checkpoint 8, this run 4" in message
    assert "settings train.learning_rate: checkpoint 0.05, this run 0.01" in message


def test_another_base_is_named(resumable, tmp_path, default_model_dir):
    wider = build_tiny_llama(tmp_path / "wider", default_model_dir, hidden_size=96, intermediate_size=192)
    with pytest.raises(ResumeError, match=r"base config_sha256: .*; base name: checkpoint '.*', this run '.*wider'"):
        run(replace(resumable, base=str(wider)))


def test_changed_data_is_named_and_the_same_records_elsewhere_resume(resumable, tmp_path):
    fewer = replace(resumable, data=replace(resumable.data, sources=[f"{DEMO}:40"]))
    with pytest.raises(ResumeError, match=r"data training examples: checkpoint \d+, this run \d+"):
        run(fewer)
    moved = tmp_path / "moved.json"
    shutil.copy(DEMO, moved)
    assert run(replace(resumable, data=replace(resumable.data, sources=[f"{moved}:48"]))).steps == 4


def test_the_command_line_refuses_with_exit_status_2(resumable, capsys):
    argv = ["--method", "lora", "--base", resumable.base, "--output", resumable.output, "--resume"]
    assert main([*argv, "--data", f"{DEMO}:48", "--lora-r", "4"]) == 2
    error = capsys.readouterr().err
    assert "it belongs to another run" in error and "settings lora.r: checkpoint 8, this run 4" in error


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "optimizer.pt").unlink(), "optimizer.pt is missing"),
        (lambda folder: truncate(folder / "optimizer.pt"), "optimizer.pt is truncated or corrupt"),
        (lambda folder: truncate(folder / "adapter_model.safetensors"), r"adapter_model.safetensors is truncated \("),
        (lambda folder: truncate(folder / "trainer_state.json"), "trainer_state.json is truncated or corrupt"),
    ],
)
def test_a_truncated_checkpoint_is_refused(resumable, damage, message):
    damage(checkpoint(resumable))
    with pytest.raises(ResumeError, match=f"Cannot resume from .*checkpoint-2: .*{message}.*Delete that checkpoint"):
        run(resumable)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_checkpoint_without_fingerprint_is_resumed_with_a_warning(resumable, caplog):
    (resumable.checkpoint_dir / FINGERPRINT_FILE).unlink()
    saved = json.loads((Path(resumable.output) / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    with caplog.at_level(logging.WARNING, logger="finetune.resume"):
        check_resume(checkpoint(resumable), {"settings": {}, "base": {}, "data": {}})
    assert "cannot be checked" in caplog.text and saved["global_step"] == 2
    assert (resumable.checkpoint_dir / FINGERPRINT_FILE).is_file(), "the next resume is checked"
