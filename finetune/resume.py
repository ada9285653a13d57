"""Resuming safely: a checkpoint continues only the run that wrote it, and only when it is whole.

The Trainer resumes from whatever checkpoint folder it finds. Given one from another base, another
LoRA shape or other data, it either fails deep inside torch with a shape error or, worse, goes on
training weights that belong to a different run, and the card then describes a model that never
existed. So every run writes ``run.json`` into its checkpoints folder: a fingerprint of what shapes
the weights -- every setting except those that only decide what is logged, saved or shown
(``MAY_CHANGE``), the base (its name and a hash of its ``config.json``) and the data (a hash of the
tokenized training and validation examples, so a changed file, cap, split or cutoff shows even under
the same path). ``--resume`` compares the new run's fingerprint with it and names every difference,
and first checks that the checkpoint is whole (a run killed while saving leaves truncated files).
A checkpoint from before fingerprints existed is resumed with a warning that nothing could be checked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .config import FinetuneConfig, portable_base

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "run.json"
# Settings a resumed run may change: none of them changes what the weights learn.
MAY_CHANGE = frozenset(
    {
        "output",
        "name",
        "label",
        "description",
        "serve_quantization",
        "resume",
        "overwrite",
        "data.sources",  # the data's hash decides: the same records under another path resume fine
        "train.eval_steps",
        "train.eval_on_start",
        "train.save_steps",
        "train.logging_steps",
        "train.keep_checkpoints",
        "train.adapter_dtype",
    }
)
REQUIRED_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


class ResumeError(ValueError):
    """A checkpoint that this run must not continue; the message names what differs or what is broken."""


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        flat.update(_flat(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def _digest(examples: list[dict[str, list[int]]]) -> str:
    hashed = hashlib.sha256()
    for example in examples:
        hashed.update(json.dumps([example["input_ids"], example["labels"]]).encode())
    return hashed.hexdigest()[:16]


def fingerprint(config: FinetuneConfig, source: str, train: list[dict], validation: list[dict]) -> dict[str, Any]:
    """What shaped this run's weights, as plain JSON values."""
    settings = {key: value for key, value in _flat(asdict(config)).items() if key not in MAY_CHANGE}
    base_config = Path(source) / "config.json"
    return {
        "settings": settings,
        "base": {
            "name": portable_base(config.base),
            "config_sha256": hashlib.sha256(base_config.read_bytes()).hexdigest()[:16]
            if base_config.is_file()
            else None,
        },
        "data": {
            "training examples": len(train),
            "training sha256": _digest(train),
            "validation examples": len(validation),
            "validation sha256": _digest(validation),
        },
    }


def write_fingerprint(checkpoint_dir: Path, found: dict[str, Any]) -> None:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    (checkpoint_dir / FINGERPRINT_FILE).write_text(json.dumps(found, indent=1), encoding="utf-8")


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per value that differs: ``section key: checkpoint X, this run Y``."""
    lines = []
    for section in ("settings", "base", "data"):
        before, after = saved.get(section, {}), now[section]
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                lines.append(f"{section} {key}: checkpoint {before.get(key)!r}, this run {after.get(key)!r}")
    return lines


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (its header promises more bytes than the file has), or None."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size < 8:
            return f"{path.name} is truncated ({size} bytes)"
        (length,) = struct.unpack("<Q", handle.read(8))
        try:
            header = json.loads(handle.read(length)) if 8 + length <= size else None
        except ValueError:
            header = None
    if header is None:
        return f"{path.name} is truncated or corrupt (its header does not read)"
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    if size < 8 + length + end:
        return f"{path.name} is truncated ({size:,} of {8 + length + end:,} bytes)"
    return None


def problems(checkpoint: Path) -> list[str]:
    """What makes ``checkpoint`` unusable: missing files, truncated weights, optimizer or state."""
    found = [f"{name} is missing" for name in REQUIRED_FILES if not (checkpoint / name).is_file()]
    if not list(checkpoint.glob("*.safetensors")):
        found.append("no weights (*.safetensors)")
    for path in sorted(checkpoint.iterdir()):
        if path.suffix == ".safetensors":
            found.append(_safetensors_problem(path) or "")
        elif path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):  # torch.save writes zips
            found.append(f"{path.name} is truncated or corrupt")
        elif path.suffix == ".json":
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                found.append(f"{path.name} is truncated or corrupt")
    return [problem for problem in found if problem]


def check_resume(checkpoint: Path, now: dict[str, Any]) -> None:
    """Refuse a broken checkpoint or one from another run, naming why; warn when it cannot be checked."""
    broken = problems(checkpoint)
    if broken:
        raise ResumeError(
            f"Cannot resume from {checkpoint}: {'; '.join(broken)}. Delete that checkpoint folder to resume from "
            "the one before it, or start again with --overwrite"
        )
    saved_file = checkpoint.parent / FINGERPRINT_FILE
    if not saved_file.is_file():
        log.warning(
            "%s has no %s (an older finetune wrote it): its base, settings and data cannot be checked",
            checkpoint.parent,
            FINGERPRINT_FILE,
        )
        write_fingerprint(checkpoint.parent, now)
        return
    changed = differences(json.loads(saved_file.read_text(encoding="utf-8")), now)
    if changed:
        raise ResumeError(
            f"Cannot resume from {checkpoint}: it belongs to another run. "
            + "; ".join(changed)
            + ". Resume with the checkpoint's settings, base and data, or start again with --overwrite"
        )
