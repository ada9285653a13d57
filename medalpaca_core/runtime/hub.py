"""Is a Hugging Face Hub repository usable right now? Answered without downloading anything.

The registry lists the paper's real models by Hub id. Offline (this machine, CI) they must show as
unavailable with a reason instead of failing deep inside ``from_pretrained``; on a Space or a GPU
box with internet they download on first use.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

HUB_HOST = "huggingface.co"
_REACHABILITY_TTL_S = 60.0
_last_probe: tuple[float, bool] | None = None


def looks_like_hub_id(source: str) -> bool:
    """``owner/name`` with no local folder of that name."""
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/", "~")) and not Path(source).exists()


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """One TCP connection to the Hub, remembered for a minute so listings stay fast."""
    global _last_probe
    if offline_mode():
        return False
    now = time.monotonic()
    if _last_probe is not None and now - _last_probe[0] < _REACHABILITY_TTL_S:
        return _last_probe[1]
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout_s).close()
        reachable = True
    except OSError:
        reachable = False
    _last_probe = (now, reachable)
    return reachable


def cached_file(repo_id: str, filename: str) -> str | None:
    """The local path of ``filename`` of ``repo_id`` in the Hugging Face cache, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


def repo_status(repo_id: str, marker_file: str) -> tuple[bool, str]:
    """(usable, why) for a Hub repository whose presence ``marker_file`` proves."""
    if cached_file(repo_id, marker_file):
        return True, f"{repo_id} is in the local Hugging Face cache"
    if hub_reachable():
        return True, f"{repo_id} downloads from the Hugging Face Hub on first use"
    why = "HF_HUB_OFFLINE is set" if offline_mode() else "the Hugging Face Hub is unreachable"
    return False, f"{repo_id} is not downloaded and {why}"
