"""Thread budgets per generation: one generation gets every core, concurrent ones split them.

Each generation runs in its own Python thread, and every Python thread that calls into torch gets its
own OpenMP team of ``torch.get_num_threads()`` threads. Two generations at once on 2 cores are then 4
busy threads on 2 cores, whose OpenMP barriers spin against each other (measured: 1 token/s instead
of 17). ``OMP_WAIT_POLICY=PASSIVE`` stops the spinning but makes every single stream ~30% slower.

Instead, each generation asks for ``cores // generations running`` threads before its first forward
pass and again at every step (``torch.set_num_threads`` sets the calling thread's OpenMP team size),
so a lone visitor decodes on every core with spinning barriers, and concurrent ones never hold more
threads together than there are cores.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class CpuShare:
    """Counts running generations and sizes each one's thread team to its share of the cores."""

    def __init__(self, cores: int | None = None):
        self.cores = cores or available_cores()
        self._running = 0
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        return self._running

    def threads(self) -> int:
        """One generation's share of the cores now (at least 1)."""
        return max(1, self.cores // max(1, self._running))

    def apply(self) -> int:
        """Size the calling thread's OpenMP team to its share; cheap enough to call every decode step."""
        import torch

        wanted = self.threads()
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
        return wanted

    @contextmanager
    def generation(self) -> Iterator[CpuShare]:
        """Count the calling thread's generation as running for the block, its team sized on entry."""
        with self._lock:
            self._running += 1
        try:
            self.apply()
            yield self
        finally:
            with self._lock:
                self._running -= 1

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        """A ``StoppingCriteria`` that never stops: it re-sizes the team once per generated token."""
        import torch

        self.apply()
        return torch.zeros((input_ids.shape[0],), dtype=torch.bool, device=input_ids.device)


CPU_SHARE = CpuShare()  # the process's one count: every generation in the process shares these cores
