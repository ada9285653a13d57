"""Starting a LoRA run from a trained adapter: a further phase of a finished run.

A phase after the first epoch (the unlikelihood steps of ``unlikelihood.py``) continues the shipped
adapter's weights rather than a fresh LoRA. The adapter is read whole before anything else happens,
because it usually lives in the very folder the run is about to replace; its model card, followed by
the cards it kept itself, is kept beside the new one (``STARTED_FROM.md``), so the finished folder still
says how every earlier phase was trained. An adapter of another base or another LoRA shape is refused
with every difference named: loading it would either fail deep inside PEFT or silently train weights of
a different model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import FinetuneConfig, portable_base

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
KEPT_CARD = "STARTED_FROM.md"
CARD_SEPARATOR = "\n\n---\n\n*The adapter this one started from was itself started from another:*\n\n"


def set_aside(folder: Path) -> Path:
    """Where ``--overwrite`` keeps the finished model of ``folder`` until the run that replaces it has saved.

    A phase usually overwrites the adapter it starts from; were that folder deleted at the start, a run
    killed half-way would lose the only copy of the adapter outside git. Hidden (a leading dot), so the
    registry does not list it as a second variant while it waits.
    """
    return folder.with_name(f".{folder.name}.previous")


class StartError(ValueError):
    """An adapter this run cannot start from; the message names the file or the differences."""


@dataclass(frozen=True)
class StartingAdapter:
    """A trained adapter's weights and card, held in memory while its folder is replaced."""

    folder: Path
    weights: dict[str, torch.Tensor]
    card: str | None

    def load_into(self, model: Any) -> None:
        """Copy the weights into ``model``'s fresh LoRA layers; every LoRA layer must receive one."""
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, self.weights)
        missing = [key for key in result.missing_keys if "lora_" in key]
        if missing or result.unexpected_keys:
            raise StartError(
                f"{self.folder} does not fit this model's LoRA layers: missing {missing[:3]}, "
                f"unexpected {list(result.unexpected_keys)[:3]}"
            )


def differences(config: FinetuneConfig, saved: dict[str, Any]) -> list[str]:
    """What differs between the run's base and LoRA shape and those the adapter was trained with."""
    wanted = {
        "base": portable_base(config.base),
        "r": config.lora.r,
        "lora_alpha": config.lora.alpha,
        "target_modules": sorted(config.lora.target_modules),
    }
    found = {
        "base": saved.get("base_model_name_or_path"),
        "r": saved.get("r"),
        "lora_alpha": saved.get("lora_alpha"),
        "target_modules": sorted(saved.get("target_modules") or []),
    }
    wrong = [key for key in wanted if found[key] != wanted[key]]
    return [f"{key}: the adapter has {found[key]!r}, this run {wanted[key]!r}" for key in wrong]


def read_start(config: FinetuneConfig) -> StartingAdapter | None:
    """The adapter ``config.init_adapter`` names, checked against the run, or None when there is none."""
    if not config.init_adapter:
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(config.init_adapter).expanduser()
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        kept = set_aside(folder)
        hint = f"; an interrupted run left the one it replaced in {kept}" if (kept / CONFIG_FILE).is_file() else ""
        raise StartError(f"init_adapter {folder} holds no trained adapter ({CONFIG_FILE} and {WEIGHTS_FILE}){hint}")
    try:
        saved = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        weights = load_file(str(folder / WEIGHTS_FILE))
    except (OSError, ValueError, SafetensorError) as error:  # unreadable, not JSON, truncated weights
        raise StartError(f"init_adapter {folder} cannot be read: {error}") from None
    wrong = differences(config, saved)
    if wrong:
        raise StartError(f"init_adapter {folder} was trained for another model: " + "; ".join(wrong))
    return StartingAdapter(folder, weights, lineage(folder))


def lineage(folder: Path) -> str | None:
    """The adapter's card, then the cards of the phases before it (its own ``STARTED_FROM.md``), or None.

    A third phase would otherwise drop the first phase's card: only the latest one is kept beside the new.
    """
    cards = [folder / name for name in ("README.md", KEPT_CARD)]
    texts = [card.read_text(encoding="utf-8") for card in cards if card.is_file()]
    return CARD_SEPARATOR.join(texts) if texts else None
