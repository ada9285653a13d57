"""The simulated machine speed: a process with ``MEDALPACA_TEST_SPEED`` set asks for every wait that many times
as long. Checked by recording what reaches the real waits, so no test here depends on a clock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SPEED_DIR = Path(__file__).parent
PROBE = """
import asyncio, threading, time
installed = getattr(time.sleep, "stretched_by", None)  # by sitecustomize at start-up, as in a server a test starts
asked = []
time.sleep = lambda seconds: asked.append(round(seconds, 6))
async def recorded(delay, result=None):
    asked.append(round(delay, 6))
asyncio.sleep = recorded
threading.Condition.wait = lambda self, timeout=None: asked.append(round(timeout, 6)) or True
from sitecustomize import speed_from_env, stretch_waits
if speed := speed_from_env():
    stretch_waits(speed)
time.sleep(0.02)
asyncio.run(asyncio.sleep(0.03))
threading.Event().wait(0.04)
print(installed, asked)
"""


def asked_waits(speed: str | None) -> str:
    """What the real sleep, asyncio sleep and Condition.wait are asked for when code waits 0.02, 0.03, 0.04 s."""
    env = {k: v for k, v in os.environ.items() if k != "MEDALPACA_TEST_SPEED"}
    env["PYTHONPATH"] = str(SPEED_DIR)
    if speed is not None:
        env["MEDALPACA_TEST_SPEED"] = speed
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_ten_times_faster_machine_waits_ten_times_as_long():
    assert asked_waits("10") == "10.0 [0.2, 0.3, 0.4]"


def test_a_ten_times_slower_machine_waits_a_tenth():
    assert asked_waits("0.1") == "0.1 [0.002, 0.003, 0.004]"


def test_the_machines_own_speed_stretches_nothing():
    assert asked_waits(None) == "None [0.02, 0.03, 0.04]"
    assert asked_waits("1") == "None [0.02, 0.03, 0.04]"


def test_a_speed_that_is_not_a_number_is_refused_by_name():
    env = {**os.environ, "PYTHONPATH": str(SPEED_DIR), "MEDALPACA_TEST_SPEED": "fast"}
    done = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "MEDALPACA_TEST_SPEED='fast' is not a number" in done.stderr
