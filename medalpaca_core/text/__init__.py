"""Text in and out of models: the one prompt builder and prompt fitting (``prompts``), Medical Meadow
records (``records``), RAFT contexts (``grounding``) and what visitors send (``visitor``).

No model and no threads: training, inference, evaluation and the page all read it.
"""
