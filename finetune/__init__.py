"""Fine-tuning MedAlpaca variants: full, LoRA and LoRA on an LLM.int8 base, from Medical Meadow data.

``python -m finetune --help`` for the command line; ``finetune.train.run(config)`` for Python. What
a run writes (adapter or model, card, loss log, loss curve, ``variant.json``) is picked up by
``medalpaca_core.models.registry`` without edits. See ``finetune/README.md``.
"""
