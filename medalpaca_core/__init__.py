"""medalpaca_core: load MedAlpaca variants, prompt them the MedAlpaca way, stream and evaluate answers."""

from .import_cache import install as _install_import_cache

_install_import_cache()  # before anything imports transformers (import_cache: ~0.5 s off every start)

# ruff: noqa: E402  (the hook above must come first)

from .engine import Request, Studio
from .generation import PRESETS, Answer, GenerationSettings, Stats
from .loader import LoadError, ModelManager
from .memory import MemoryRefusal
from .prompts import PromptError, PromptParts, render
from .registry import Registry, UnknownVariantError, Variant, availability

__all__ = [
    "PRESETS",
    "Answer",
    "GenerationSettings",
    "LoadError",
    "MemoryRefusal",
    "ModelManager",
    "PromptError",
    "PromptParts",
    "Registry",
    "Request",
    "Stats",
    "Studio",
    "UnknownVariantError",
    "Variant",
    "availability",
    "render",
]
