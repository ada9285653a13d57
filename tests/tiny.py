"""Builders for a tiny random LLaMA and tiny random LoRA adapters (fast stand-ins for real models)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}


def build_tiny_llama(folder: Path, tokenizer_dir: str, seed: int = 0, **overrides: int) -> Path:
    """Save a random LLaMA with the default tokenizer's vocabulary into ``folder``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        **{**TINY, **overrides},
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_lora(
    base_dir: Path, folder: Path, seed: int, rank: int = 4, targets: tuple[str, ...] = ("q_proj", "v_proj")
) -> Path:
    """A random (not zero-initialised) LoRA (on q_proj/v_proj unless ``targets``), so it really changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets), init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:  # make the adapter's effect large enough to flip greedy choices
            param.data.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    return folder


def train_tiny(base_dir: Path, folder: Path, loss: Callable[[Any, Any], Any], steps: int, lr: float = 1e-2) -> Path:
    """The tiny model after ``steps`` of Adam on ``loss(model, tokenizer)``, saved into ``folder``: a model
    that does one known thing (answers " C", always stops), so a test knows what it must find."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    torch.set_flush_denormal(True)  # Adam's moments of unused embedding rows turn denormal: 50x slower
    try:
        for _ in range(steps):
            loss(model, tokenizer).backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_flush_denormal(False)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def corrupt_adapter(folder: Path, good_adapter: Path) -> Path:
    """An adapter that looks complete (so it is 'available') but whose weights file is garbage."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text((good_adapter / "adapter_config.json").read_text())
    (folder / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    return folder
