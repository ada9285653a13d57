"""A disk cache of transformers' import structure: ~0.5 s off every start of the studio.

``import transformers`` and again ``import transformers.models`` scan every one of its ~560 model
folders, reading ~1,100 source files to find their ``__all__`` and ``@requires`` lines (the
``_LazyModule`` map of which name lives where); that is a quarter of the time from process start
to a loaded default model (BENCHMARKS.md, cold start). The answer only changes with the installed
transformers, so it is computed once per transformers version and read back from a JSON file after.

``install()`` (run when ``medalpaca_core`` is imported, before anything imports transformers) hooks
the import of ``transformers.utils.import_utils`` and wraps its ``define_import_structure`` with
the cache. Where anything goes wrong (another transformers layout, an unreadable or unwritable
cache) transformers computes the structure itself, as it would without this module.
"""

from __future__ import annotations

import importlib.machinery
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOOKED = "transformers.utils.import_utils"


def cache_file() -> Path | None:
    """Where this transformers version's structures live; None when transformers is not installed."""
    from .paths import home

    try:
        return home() / "cache" / f"transformers-{version('transformers')}-imports.json"
    except PackageNotFoundError:
        return None


Structure = dict[frozenset[str], dict[str, set[str]]]  # required backends -> module -> the names it exports


def encode(structure: Structure) -> list[Any]:
    return [
        [sorted(needs), {module: sorted(names) for module, names in where.items()}]
        for needs, where in structure.items()
    ]


def decode(data: list[Any]) -> Structure:
    return {frozenset(needs): {module: set(names) for module, names in where.items()} for needs, where in data}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically (a concurrent start reads the old file or the new one, never half of one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(out.name, path)
    except OSError as error:
        log.debug("transformers import cache not written: %s", error)


def cached(compute: Callable[..., Any], path: Path) -> Callable[..., Any]:
    """``define_import_structure`` answered from ``path`` where it holds the answer, else computed and stored."""
    store = _read(path)

    def define_import_structure(module_path: Any, prefix: str | None = None) -> Any:
        key = f"{os.fspath(module_path)}|{prefix}"
        if key in store:
            try:
                return decode(store[key])
            except (TypeError, ValueError):
                pass  # not what this version wrote: compute it again
        structure = compute(module_path, prefix)
        store[key] = encode(structure)
        _write(path, store)
        return structure

    return define_import_structure


class _Hook:
    """A ``sys.meta_path`` finder: finds ``transformers.utils.import_utils`` as usual, and wraps its function
    once the module has run (no ``importlib.abc`` base class: importing it costs more than this saves)."""

    def __init__(self, path: Path):
        self.path = path

    def find_spec(self, name: str, import_path: Any, target: Any = None) -> Any:
        if name != HOOKED:
            return None
        sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(name, import_path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            if callable(getattr(module, "define_import_structure", None)):
                module.define_import_structure = cached(module.define_import_structure, self.path)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Hook transformers' import, unless it is imported already (nothing left to save) or not installed."""
    if "transformers" in sys.modules or any(isinstance(finder, _Hook) for finder in sys.meta_path):
        return
    path = cache_file()
    if path is not None:
        sys.meta_path.insert(0, _Hook(path))
