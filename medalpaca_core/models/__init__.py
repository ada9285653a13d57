"""Variants and the models that answer them: the registry and its paper scores, the embedded default
model, loading (``loading``, ``adapters``), the memory-bounded cache (``manager``), memory estimates,
remote variants and which variants the picker offers (``selection``).

Everything below the studio (``engine.py``) that knows what a variant is.
"""
