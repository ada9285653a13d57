"""``make demo``'s console, from start to a served comparison: only the project's own lines.

``make demo`` runs ``python -m medalpaca_core prepare`` (which converts the embedded model the first
time) and then ``python app.py``. Both run here as processes on a fresh data folder, a comparison of
the default variants and the nf4 one is served, and every line they printed must be the project's:
no progress bar, no warning from a library (each is silenced at its source: ``medalpaca_core.runtime.quiet``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from gradio_client import Client

from medalpaca_core.runtime.paths import PROJECT_ROOT
from tests.app_server import free_port, serving, wait_until

STARTUP_S = 300
QUESTION = "What are the symptoms of diabetes?"
SETTINGS = {"temperature": 0, "top_p": 1, "top_k": 0, "max_new_tokens": 8, "seed": None}
# The project's lines: its loggers' format ("2026-12-06 21:00:00,000 name: message"), Gradio's start banner.
OWN_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (medalpaca|ui|app|__main__|httpx|uvicorn)\S*: |Default model ready at "
    r"|\* Running on local URL: |\* To create a public link|To create a public link|$)"
)


def served_comparison(home: Path, log: Path) -> None:
    """``make demo``'s two commands on ``home``, then one comparison; everything they print goes to ``log``."""
    env = {**os.environ, "MEDALPACA_HOME": str(home), "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_PORT": str(free_port())}
    for name in ("MEDALPACA_DEFAULT_MODEL", "GRADIO_SERVER_NAME", "PYTHONWARNINGS"):
        env.pop(name, None)
    with log.open("ab") as output:
        prepare = [sys.executable, "-m", "medalpaca_core", "prepare"]
        subprocess.run(prepare, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, check=True)
        server = subprocess.Popen(
            [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}"
    try:
        wait_until(lambda: serving(url, server, log), STARTUP_S, step_s=0.5)
        client = Client(url, verbose=False)
        variants = ["smol-base", "medalpaca-smol-lora", "smol-nf4"]
        client.predict(variants, QUESTION, "", **SETTINGS, api_name="/compare")
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_make_demo_prints_only_the_projects_own_lines(tmp_path):
    log = tmp_path / "console.log"
    served_comparison(tmp_path / "home", log)
    lines = re.split(r"[\r\n]", log.read_text(errors="replace"))  # a progress bar redraws with \r
    foreign = [line for line in lines if not OWN_LINE.match(line)]
    assert not foreign, "\n".join(foreign[:20])
