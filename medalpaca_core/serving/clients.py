"""Whom a request counts against: the client address a rate limit uses, and whom to trust for it.

Every visitor of a Space arrives through Spaces' proxy, so the socket address is the proxy's and
the visitor's own address is the first one of ``X-Forwarded-For``; off a Space that header is
trusted only from the proxies named in ``MEDALPACA_TRUSTED_PROXY``, since anyone can send it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable

from ..runtime.hosting import on_space

TRUSTED_PROXY_ENV = "MEDALPACA_TRUSTED_PROXY"
UNKNOWN_CLIENT = "unknown"
MAX_KEY_CHARS = 64  # longer than any IPv6 address: a key never grows with what a visitor sends


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
