"""The simulated machine speed: a subprocess with ``MEDALPACA_TEST_SPEED`` set waits that many times as long."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SPEED_DIR = Path(__file__).parent
PROBE = """
import asyncio, queue, threading, time
started = time.monotonic()
time.sleep(0.02)
threading.Event().wait(0.02)
try:
    queue.Queue().get(timeout=0.02)
except queue.Empty:
    pass
asyncio.run(asyncio.sleep(0.02))
print(time.monotonic() - started)
"""


def waited(speed: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MEDALPACA_TEST_SPEED"}
    env["PYTHONPATH"] = str(SPEED_DIR)
    if speed is not None:
        env["MEDALPACA_TEST_SPEED"] = speed
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_a_ten_times_faster_machine_waits_ten_times_as_long():
    assert waited("10") >= 0.8  # four waits of 0.02 s, each stretched to 0.2 s: a lower bound, never a race


def test_the_machines_own_speed_stretches_nothing():
    assert waited(None) < 0.8  # 0.08 s of waits: a bound 10x the expected value


def test_a_speed_that_is_not_a_number_is_refused_by_name():
    env = {**os.environ, "PYTHONPATH": str(SPEED_DIR), "MEDALPACA_TEST_SPEED": "fast"}
    done = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "MEDALPACA_TEST_SPEED='fast' is not a number" in done.stderr
