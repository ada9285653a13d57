"""Where the studio runs: its folders (``paths``), a Space or a plain machine (``hosting``), whether the
Hugging Face Hub is usable (``hub``), the cached transformers import structure (``import_cache``), libraries'
known noise kept off its console (``quiet``) and charts that read on the page's light or dark theme (``charts``).

The bottom of the core: no model, no threads, nothing from the other subpackages.
"""
