"""Generating answers from a loaded model: the settings (``settings``), the answers it reports
(``answers``), a row's tokens (``decoding``), the running batch per base (``scheduler`` with
``batch_row``, ``batch_cache``, ``sampling``), mixed-adapter batches in one pass (``multilora``)
and the CPU thread budget (``cpu_share``).

Knows nothing of variants or the registry: it gets token ids and a model and reports answers.
"""
