"""One process-wide lock around every model construction.

transformers' ``from_pretrained`` swaps class attributes while it runs (``no_tie_weights`` replaces
``PreTrainedModel.tie_weights`` for every model in the process, ``no_init_weights`` the init
functions). Two loads in parallel threads -- the web app answering two groups at once -- then
untie each other's embeddings: a tied ``lm_head`` came up freshly initialised (random answers).
transformers' lazy module is not thread-safe on a name's first import either: an int8 and an nf4
load starting together in a fresh process made one fail with "cannot import name
'AutoModelForCausalLM'". So transformers and peft names are imported under this lock too.
Loads take turns; generation with models already loaded never waits on this lock.
"""

import threading

LOADING = threading.RLock()
