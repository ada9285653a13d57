"""Where the studio is hosted: a Hugging Face Space or a plain machine.

A Space (``SPACE_ID`` set) differs from a laptop in three ways; this module handles the first and the
last, ``serving/clients.py`` the second:

- its disk is ephemeral and only ``/data`` (persistent storage, when the Space has it) survives a
  restart, so the studio's data goes there, or the page says plainly that votes will not persist;
- every visitor arrives through Spaces' proxy, so the socket address is the proxy's and the visitor's
  own address is the first one of ``X-Forwarded-For``; off a Space that header is trusted only from
  the proxies named in ``MEDALPACA_TRUSTED_PROXY``, since anyone can send it;
- on ZeroGPU hardware the functions that run models must be wrapped in ``spaces.GPU`` to get a GPU.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

SPACE_ENV = "SPACE_ID"
PERSISTENT_ROOT_ENV = "MEDALPACA_PERSISTENT_ROOT"  # stands in for /data in tests
DEFAULT_PERSISTENT_ROOT = "/data"
HOME_FOLDER = "medalpaca-studio"
NOT_PERSISTENT = (
    "⚠ This Space has no persistent storage: votes, evaluation results and fine-tunes are lost when it "
    "restarts. Its owner can add persistent storage in the Space's settings."
)

F = TypeVar("F", bound=Callable)


def on_space() -> bool:
    return bool(os.environ.get(SPACE_ENV))


def persistent_root() -> Path:
    return Path(os.environ.get(PERSISTENT_ROOT_ENV) or DEFAULT_PERSISTENT_ROOT)


def persistent_home() -> Path | None:
    """The studio's folder on a Space's persistent storage, or None off a Space or without writable storage."""
    if not on_space():
        return None
    root = persistent_root()
    if not (root.is_dir() and os.access(root, os.W_OK | os.X_OK)):
        return None
    return root / HOME_FOLDER


def persistence_notice() -> str | None:
    """What the page says once when it runs on a Space whose data will not survive a restart."""
    if on_space() and not os.environ.get("MEDALPACA_HOME") and persistent_home() is None:
        return NOT_PERSISTENT
    return None


def gpu(function: F) -> F:
    """``spaces.GPU(function)`` when the ``spaces`` package is installed (it is a no-op off ZeroGPU), else
    ``function`` itself: the studio runs the same everywhere and needs the package only on a Space."""
    if importlib.util.find_spec("spaces") is None:
        return function
    import spaces

    return spaces.GPU(function)
