"""A folder of folders kept under a size cap and an age limit: results of exams that visitors uploaded.

Results of an uploaded exam are kept so that evaluating the same upload again resumes it, but a
public app cannot keep every visitor's exam forever: before each new run the oldest folders go
until the rest are within ``max_bytes`` and younger than ``max_age_s``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

MiB = 1024**2


@dataclass(frozen=True)
class FolderCache:
    root: Path
    max_bytes: int = 64 * MiB
    max_age_s: float = 7 * 24 * 3600

    def prune(self, keep: Path | None = None) -> None:
        """Remove expired folders, then the least recently used ones until the rest fit ``max_bytes``.

        ``keep`` (the folder of the run about to start) is never removed, nor counted.
        """
        if not self.root.is_dir():
            return
        now = time.time()
        entries = sorted(
            ((_last_used(folder), _size(folder), folder) for folder in self.root.iterdir() if folder != keep),
            reverse=True,  # newest first
        )
        total = 0
        for used, size, folder in entries:
            total += size
            if now - used > self.max_age_s or total > self.max_bytes:
                _remove(folder)
                total -= size

    def folder(self, name: str) -> Path:
        """The folder for ``name``, marked as just used (so a resumed run is not the next one pruned)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        path.touch()
        return path


def _last_used(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    if not path.is_dir():
        return path.stat().st_size if path.exists() else 0
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file() and not file.is_symlink())
