"""Loading one model: the device and dtype, the bitsandbytes config, the weights and the tokenizer.

Weights and adapters load from safetensors (a Hub repository that only has legacy ``.bin`` files goes
through torch's ``weights_only`` loader, which runs no code), and ``trust_remote_code`` is never set.
The memory-bounded cache that shares one base among its adapters is ``manager.py``; fine-tuning calls
``load_pretrained`` directly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..runtime import hub
from ..runtime.quiet import without_progress_bars
from .default_model import DEFAULT_ALIAS, resolve_default_model
from .loading_lock import LOADING

# bitsandbytes logs a warning on every int8 matmul that bf16 inputs are cast to fp16: expected here,
# and thousands of lines per answer otherwise.
logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)


class LoadError(RuntimeError):
    """A base model or adapter that could not be loaded; the message names the variant and why."""


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto': the fastest correct dtype of the device (see BENCHMARKS.md for the CPU numbers)."""
    if dtype != "auto":
        return dtype
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    # bf16 halves the bytes read per token (decode is memory-bound) where the CPU computes it natively
    # (AVX512-BF16/AMX: ~3x faster than fp32 there); elsewhere bf16 is emulated and fp32 is faster.
    return "bfloat16" if cpu_computes_bf16() else "float32"


def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX tiles).

    oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) also says yes for plain AVX-512,
    which only emulates bf16: on such a CPU a 1600x576x1536 product took 49 ms in bf16 and 10 ms in fp32,
    and log-likelihood evaluation ran 5x slower than it had in fp32.
    """
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_base(base: str) -> str:
    """The registry's base spelling -> something ``from_pretrained`` understands."""
    if base == DEFAULT_ALIAS:
        return resolve_default_model()
    path = Path(base).expanduser()
    return str(path) if path.exists() else base


def bnb_config(quantization: str, dtype: str) -> Any:
    """bitsandbytes settings: LLM.int8 with the paper's outlier threshold 6.0, or QLoRA's nf4."""
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6.0)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=getattr(torch, dtype),
        bnb_4bit_use_double_quant=True,
    )


def _config_for(source: str) -> Any | None:
    """The model config without weights: local folder, Hub cache, or None."""
    with LOADING:  # first imports race too (loading_lock)
        from transformers import AutoConfig

    if hub.looks_like_hub_id(source) and not hub.cached_file(source, "config.json"):
        return None
    try:
        return AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        return None


def count_params(source: str) -> int | None:
    """Parameter count from the config alone (the model is built on the meta device).

    ``torch.device("meta")`` is thread-local; accelerate's ``init_empty_weights`` patches torch for every
    thread, so a model loading at the same time in another thread (the web app) got meta weights.
    """
    import torch

    config = _config_for(source)
    if config is None:
        return None
    with LOADING, torch.device("meta"):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def load_tokenizer(source: str) -> Any:
    """The tokenizer, padded on the left (generation continues on the right)."""
    with LOADING:  # first imports race too (loading_lock)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_pretrained(source: str, quantization: str, dtype: str, device: str) -> tuple[Any, Any]:
    """One base model and its tokenizer, in the requested precision (shared with ``finetune/``)."""
    import torch

    with LOADING, without_progress_bars():  # the manager logs one line per load instead
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "trust_remote_code": False}
        if Path(source).is_dir():
            kwargs["use_safetensors"] = True
        if quantization != "none":
            kwargs["quantization_config"] = bnb_config(quantization, dtype)
        if quantization != "none" or device != "cpu":
            kwargs["device_map"] = {"": device}
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        return model, load_tokenizer(source)
