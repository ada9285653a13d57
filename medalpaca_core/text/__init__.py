"""Text in and out of models: the one prompt builder and prompt fitting (``prompts``), Medical Meadow
records (``records``), RAFT contexts (``grounding``), what visitors send (``visitor``) and counts in words
(``plural``).

No model and no threads: training, inference, evaluation and the page all read it.
"""
