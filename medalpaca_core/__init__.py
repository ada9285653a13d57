"""medalpaca_core: load MedAlpaca variants, prompt them the MedAlpaca way, stream and evaluate answers."""

from .runtime.import_cache import install as _install_import_cache
from .runtime.quiet import install as _install_quiet

_install_import_cache()  # before anything imports transformers (import_cache: ~0.5 s off every start)
_install_quiet()  # libraries' known noise off the console, by exact message (quiet)

# ruff: noqa: E402  (the hook above must come first)

from .engine import Request, Studio
from .generation.answers import Answer, Stats
from .generation.settings import PRESETS, GenerationSettings
from .models.loading import LoadError
from .models.manager import ModelManager
from .models.memory import MemoryRefusal
from .models.registry import Registry, UnknownVariantError, Variant, availability
from .text.prompts import PromptError, PromptParts, render

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
