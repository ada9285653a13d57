"""Where MedAlpaca Studio keeps things on disk.

Everything a user's machine accumulates (the converted default model, freshly fine-tuned variants,
votes, evaluation results) lives under one folder, ``MEDALPACA_HOME``, so that it can be inspected,
moved or deleted in one go. The project's own bundled files live in ``assets/`` beside the package.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from .hosting import persistent_home

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = PROJECT_ROOT / "assets"
BUNDLED_ADAPTERS_DIR = ASSETS_DIR / "adapters"
REGISTRY_FILE = ASSETS_DIR / "variants.yaml"


def home() -> Path:
    """The studio's data folder: ``$MEDALPACA_HOME``; on a Space with persistent storage
    ``/data/medalpaca-studio`` (a Space's other folders do not survive a restart); else
    ``~/.cache/medalpaca-studio``."""
    explicit = os.environ.get("MEDALPACA_HOME")
    if explicit:
        return Path(explicit).expanduser()
    persistent = persistent_home()
    if persistent is not None:
        return persistent
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


def public_paths(text: str) -> str:
    """``text`` as a visitor may see it: no absolute path of this server, only paths relative to the project,
    to ``$MEDALPACA_HOME`` (written as such), to the Python environment or to the temporary folder.

    Messages and the Models tab name files (an adapter that is missing, an exam that cannot be read); the
    folders they sit in tell a visitor the server's layout, user name and install, and nothing useful.
    """
    roots = {
        str(home().resolve()): "$MEDALPACA_HOME",
        str(home()): "$MEDALPACA_HOME",
        str(PROJECT_ROOT): ".",
        str(Path(sys.prefix).resolve()): "<python>",
        sys.prefix: "<python>",
        str(Path(tempfile.gettempdir()).resolve()): "<temp>",
        tempfile.gettempdir(): "<temp>",
        str(Path.home()): "~",
    }
    for root in sorted(roots, key=len, reverse=True):
        if len(root) > 1:
            text = text.replace(root + os.sep, "" if roots[root] == "." else roots[root] + "/")
            text = re.sub(re.escape(root) + r"(?![\w.-])", roots[root], text)
    return text
