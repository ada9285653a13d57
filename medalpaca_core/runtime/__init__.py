"""Where the studio runs: its folders (``paths``), a Space or a plain machine (``hosting``), whether the
Hugging Face Hub is usable (``hub``) and the cached transformers import structure (``import_cache``).

The bottom of the core: no model, no threads, nothing from the other subpackages.
"""
