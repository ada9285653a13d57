"""What every benchmark section shares: the result ``Row``, a script's options, a free port, the app's question
and the app served as shipped (``start_server``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from medalpaca_core.models.default_model import resolve_default_model

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "What are the symptoms of diabetes?"  # what the app benchmarks ask, with the page's diabetes context
SERVER_BUDGET = "2GB"  # MEDALPACA_MEMORY_BUDGET of the served app
STARTUP_S = 180


@dataclass(frozen=True)
class Row:
    """One benchmark result line."""

    section: str
    name: str
    value: str
    detail: str
    command: str

    def table_line(self) -> str:
        """The row as BENCHMARKS.md's results table has it."""
        return f"| {self.section} | {self.name} | {self.value} | {self.detail} | `{self.command}` |"


def whole_number_options(doc: str | None, **defaults: int) -> argparse.Namespace:
    """A benchmark script's command line: its docstring as help, one whole-number option per default
    (``max_new_tokens=16`` is ``--max-new-tokens``, 16 unless given)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    return parser.parse_args()


def free_port() -> int:

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(home: Path, log: Path, **extra_env: str) -> tuple[subprocess.Popen, str]:
    """``app.py`` as shipped, with its own data folder and the converted default model (no second conversion);
    ``extra_env`` adds environment variables (e.g. ``MEDALPACA_VARIANTS``)."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "MEDALPACA_HOME": str(home),
        "MEDALPACA_DEFAULT_MODEL": resolve_default_model(),
        "MEDALPACA_MEMORY_BUDGET": SERVER_BUDGET,
        "HF_HUB_OFFLINE": "1",
        "MEDALPACA_TRUSTED_PROXY": "127.0.0.1",  # the visitors' X-Forwarded-For counts, as behind a proxy
        **extra_env,
    }
    with log.open("wb") as output:
        server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/config", timeout=5).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"the app did not start; its log: {log.read_text(errors='replace')[-2000:]}")
