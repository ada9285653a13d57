"""Where the studio is hosted: a Hugging Face Space, behind a proxy, or a plain machine.

A Space (``SPACE_ID`` set) differs from a laptop in three ways this module handles:

- its disk is ephemeral and only ``/data`` (persistent storage, when the Space has it) survives a
  restart, so the studio's data goes there, or the page says plainly that votes will not persist;
- every visitor arrives through Spaces' proxy, so the socket address is the proxy's and the visitor's
  own address is the first one of ``X-Forwarded-For``; off a Space that header is trusted only from
  the proxies named in ``MEDALPACA_TRUSTED_PROXY``, since anyone can send it;
- on ZeroGPU hardware the functions that run models must be wrapped in ``spaces.GPU`` to get a GPU.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

SPACE_ENV = "SPACE_ID"
PERSISTENT_ROOT_ENV = "MEDALPACA_PERSISTENT_ROOT"  # stands in for /data in tests
DEFAULT_PERSISTENT_ROOT = "/data"
HOME_FOLDER = "medalpaca-studio"
TRUSTED_PROXY_ENV = "MEDALPACA_TRUSTED_PROXY"
UNKNOWN_CLIENT = "unknown"
MAX_KEY_CHARS = 64  # longer than any IPv6 address: a key never grows with what a visitor sends
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


def trusted_proxies() -> set[str] | None:
    """Peers whose ``X-Forwarded-For`` names the client: every peer on a Space (only its proxy reaches the
    app), the addresses in MEDALPACA_TRUSTED_PROXY (``*`` for any), or none (None)."""
    if on_space():
        return {"*"}
    configured = {part.strip() for part in os.environ.get(TRUSTED_PROXY_ENV, "").split(",") if part.strip()}
    return configured or None


def _valid_address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return None


def client_key(peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
    """The address a rate limit counts a request against.

    ``peer`` is the socket's address, ``forwarded_for`` the request's X-Forwarded-For header values.
    The first forwarded address counts only when ``peer`` is a trusted proxy and it is a valid IP
    address; otherwise the peer does, so a forged header off a Space changes nothing.
    """
    trusted = trusted_proxies()
    peer_key = (peer or UNKNOWN_CLIENT)[:MAX_KEY_CHARS]
    if not trusted or ("*" not in trusted and peer not in trusted):
        return peer_key
    addresses = [part for value in forwarded_for for part in value.split(",") if part.strip()]
    first = _valid_address(addresses[0]) if addresses else None
    return first or peer_key


def untrusting_server_env() -> None:
    """Make uvicorn leave the socket address alone (unless the operator configured it).

    uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1 by default and replaces the client address with
    the header's, so a local process could claim any address; the studio decides whom to trust itself
    (``client_key``) and needs the real peer for that.
    """
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")


def gpu(function: F) -> F:
    """``spaces.GPU(function)`` when the ``spaces`` package is installed (it is a no-op off ZeroGPU), else
    ``function`` itself: the studio runs the same everywhere and needs the package only on a Space."""
    if importlib.util.find_spec("spaces") is None:
        return function
    import spaces

    return spaces.GPU(function)
