"""The console holds the project's own lines: libraries' noise silenced where it starts, and nothing more.

What ``make demo`` printed from start to a served comparison besides the project's lines, and how each
is silenced here, narrowly (an exact message, one logger, the bars of one call):

- transformers' progress bars while a model loads, converts or is written ("Loading weights", "Writing
  model shards", "Converting and de-quantizing GGUF tensors"): off inside ``without_progress_bars``,
  around those calls only; the loader logs one line per load instead.
- transformers' ``FutureWarning`` that ``is_gradient_checkpointing`` is deprecated, which PEFT triggers
  by reading the attribute when it wraps a model: ignored by its exact message.
- bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" (an optional faster kernel;
  the plain one works) on its CPU backend's logger: dropped by its exact start.

Every other warning and log line of these libraries still shows.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

GRADIENT_CHECKPOINTING = r"`is_gradient_checkpointing` is deprecated"
BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNEL = "Failed to load CPU gemm_4bit_forward from kernels-community"


class DropMessage(logging.Filter):
    """Drops the records of one logger whose message starts with ``prefix``; lets every other one through."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def install() -> None:
    """The two message filters, once per process (``medalpaca_core`` calls it on import)."""
    warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING, category=FutureWarning)
    logger = logging.getLogger(BNB_LOGGER)
    if not any(isinstance(f, DropMessage) and f.prefix == BNB_KERNEL for f in logger.filters):
        logger.addFilter(DropMessage(BNB_KERNEL))


@contextmanager
def without_progress_bars(gguf: bool = False) -> Iterator[None]:
    """transformers' progress bars off while the block runs (and the GGUF conversion's, which uses tqdm itself,
    when ``gguf``); as they were afterwards. Used under ``LOADING``, so no other load races the switch."""
    from transformers.utils import logging as transformers_logging

    were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        if not gguf:
            yield
            return
        from transformers import modeling_gguf_pytorch_utils as conversion

        bar = conversion.tqdm
        conversion.tqdm = functools.partial(bar, disable=True)
        try:
            yield
        finally:
            conversion.tqdm = bar
    finally:
        if were_on:
            transformers_logging.enable_progress_bar()
