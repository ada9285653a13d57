"""A per-client rate limit for the endpoints that run models.

A public demo on one small machine is shared: without a limit, one script that submits comparisons
in a loop takes every generation slot and the queue from everyone else. The limit is a sliding
window (at most ``requests`` starts in any ``window_s`` seconds per client), counted only for
requests that are admitted, and the refusal says how long to wait.

``MEDALPACA_RATE_LIMIT`` sets it: ``20/60`` (20 per 60 s, the default), ``5/10s``, ``30/min`` or
``off``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_LIMIT = "20/60"
ENV_VAR = "MEDALPACA_RATE_LIMIT"
# Clients remembered before idle ones are forgotten, so that many addresses cannot grow the table.
MAX_TRACKED_CLIENTS = 10_000
UNITS_S = {"": 1.0, "s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


class RateLimited(RuntimeError):
    """A request refused because its client exceeded the limit; the message says when to retry."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` admitted requests per client in any ``window_s`` seconds."""

    requests: int
    window_s: float

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """'20/60', '5/10s', '30/min', '100/h' -> a limit; 'off' (or '0', 'none') -> None."""
        if text.strip().lower() in {"off", "0", "none", "no"}:
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]*)\s*", text.lower())
        if not match or match.group(3) not in UNITS_S or int(match.group(1)) < 1:
            raise ValueError(f"Cannot read the rate limit {text!r}; use e.g. 20/60 (20 per 60 s), 30/min, or off")
        amount = float(match.group(2)) if match.group(2) else 1.0
        window = amount * UNITS_S[match.group(3)]
        if window <= 0:
            raise ValueError(f"The rate limit {text!r} has an empty time window")
        return cls(int(match.group(1)), window)

    def describe(self) -> str:
        return f"{self.requests} per {self.window_s:g} s"


class RateLimiter:
    """Admits or refuses requests per client key (an address); safe to share between threads."""

    def __init__(self, limit: RateLimit | None, clock: Callable[[], float] = time.monotonic):
        self.limit, self.clock = limit, clock
        self._starts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, variable: str = ENV_VAR, default: str = DEFAULT_LIMIT) -> RateLimiter:
        """The limit that ``variable`` sets (model runs by default; the vote cap uses its own variable)."""
        return cls(RateLimit.parse(os.environ.get(variable) or default))

    def admit(self, client: str, units: int = 1, what: str = "") -> None:
        """Count ``units`` requests of ``client`` (a long run costs more than one), or raise RateLimited without
        counting any; ``what`` says in the refusal why a run costs more than one.

        A run is never refused for its size alone: it costs at most the whole allowance.
        """
        if self.limit is None:
            return
        units = max(1, min(units, self.limit.requests))
        now = self.clock()
        with self._lock:
            starts = self._starts.setdefault(client, deque())
            while starts and starts[0] <= now - self.limit.window_s:
                starts.popleft()
            if len(starts) + units > self.limit.requests:
                wait = starts[len(starts) + units - self.limit.requests - 1] + self.limit.window_s - now
                raise RateLimited(
                    f"Too many requests: at most {self.limit.describe()} from one client.{' ' + what if what else ''} "
                    f"Try again in {max(wait, 1):.0f} s.",
                    wait,
                )
            starts.extend([now] * units)
            if len(self._starts) > MAX_TRACKED_CLIENTS:
                self._forget_idle(now - self.limit.window_s)

    def _forget_idle(self, cutoff: float) -> None:
        """Drop clients with no request since ``cutoff``: they have their whole allowance again anyway."""
        for key in [key for key, starts in self._starts.items() if not starts or starts[-1] <= cutoff]:
            del self._starts[key]
