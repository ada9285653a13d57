"""Where MedAlpaca Studio keeps things on disk.

Everything a user's machine accumulates (the converted default model, freshly fine-tuned variants,
votes, evaluation results) lives under one folder, ``MEDALPACA_HOME``, so that it can be inspected,
moved or deleted in one go. The project's own bundled files live in ``assets/`` beside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
BUNDLED_ADAPTERS_DIR = ASSETS_DIR / "adapters"
REGISTRY_FILE = ASSETS_DIR / "variants.yaml"


def home() -> Path:
    """The studio's data folder: ``$MEDALPACA_HOME`` or ``~/.cache/medalpaca-studio``."""
    explicit = os.environ.get("MEDALPACA_HOME")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "medalpaca-studio"


def models_dir() -> Path:
    """Converted base models (the default model's safetensors copy lives here)."""
    return home() / "models"


def finetuned_dir() -> Path:
    """Where ``finetune/`` writes new variants; the registry scans it for adapters and models."""
    return home() / "finetuned"


def data_dir() -> Path:
    """Votes database, evaluation results and other app state."""
    return home() / "data"
