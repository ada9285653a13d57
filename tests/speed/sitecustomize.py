"""Run the suite as if on a machine ``MEDALPACA_TEST_SPEED`` times faster (10) or slower (0.1) than this one.

A test races its machine when its outcome depends on how long the computing takes beside the waiting:
sleeps, poll intervals, timeouts. A machine ten times faster computes in a tenth of the time and waits
just as long; here the computing stays as it is and every wait lasts ten times as long, which is the
same race. At 0.1 every wait is a tenth as long, so each timeout comes as soon, relative to the work,
as it would on a machine ten times slower. ``MEDALPACA_TEST_SPEED=10 make test`` runs the whole suite so.

Stretched: ``time.sleep``, ``asyncio.sleep`` and every ``threading.Condition.wait`` timeout (through it
``Event.wait``, ``Queue.get`` and ``Future.result``). Clocks are left alone. ``tests/conftest.py`` installs
it in the test process and puts this folder on ``PYTHONPATH``, so the servers a test starts as
subprocesses import it as their ``sitecustomize`` and wait stretched too.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

ENV = "MEDALPACA_TEST_SPEED"


def speed_from_env() -> float | None:
    """The factor asked for, or None when the suite runs at this machine's own speed."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    try:
        speed = float(text)
    except ValueError:
        raise SystemExit(f"{ENV}={text!r} is not a number; use e.g. 10 (a machine 10x faster) or 0.1") from None
    if not 0.01 <= speed <= 100:
        raise SystemExit(f"{ENV}={text} is outside 0.01-100")
    return None if speed == 1 else speed


def shortest_wait(seconds: float) -> float:
    """The least time code that waits ``seconds`` (paced to a clock) is sure to take in this process.

    A test that asserts code waited at least so long asks this: on a simulated slow machine (speed < 1) every
    wait is shorter; on a fast one a stretched wait is at least the original, since part of it may be spent."""
    return seconds * min(1.0, getattr(time.sleep, "stretched_by", 1.0))


def stretch_waits(speed: float) -> None:
    """Make every wait ``speed`` times as long, once per process."""
    if getattr(time.sleep, "stretched_by", None):
        return
    real_sleep, real_async_sleep, real_wait = time.sleep, asyncio.sleep, threading.Condition.wait

    def sleep(seconds: float) -> None:
        real_sleep(seconds * speed)

    async def async_sleep(delay: float, result: object = None) -> object:
        return await real_async_sleep(delay * speed, result)

    def wait(self: threading.Condition, timeout: float | None = None) -> bool:
        return real_wait(self, None if timeout is None else timeout * speed)

    sleep.stretched_by = speed  # type: ignore[attr-defined]
    time.sleep = sleep
    asyncio.sleep = asyncio.tasks.sleep = async_sleep
    threading.Condition.wait = wait  # type: ignore[method-assign]


if __name__ == "sitecustomize" and (found := speed_from_env()):  # a subprocess of a stretched test run
    stretch_waits(found)
