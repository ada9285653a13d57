"""One process-wide lock around every model construction.

transformers' ``from_pretrained`` swaps class attributes while it runs (``no_tie_weights`` replaces
``PreTrainedModel.tie_weights`` for every model in the process, ``no_init_weights`` the init
functions). Two loads in parallel threads -- the web app answering two groups at once -- then
untie each other's embeddings: a tied ``lm_head`` came up freshly initialised (random answers).
Loads take turns; generation with models already loaded never waits on this lock.
"""

import threading

LOADING = threading.RLock()
