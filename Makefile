# glag_mm: `make demo` runs the main job, `make test` runs the tests.
# Both create the virtual environment from nothing on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.glag_mm-installed
export OMP_NUM_THREADS ?= 2
export PYTHONWARNINGS ?= ignore::UserWarning:mmcv

.PHONY: venv test lint demo clean-venv

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check glag_mm configs tools tests benchmarks experiments setup.py
	$(BIN)/ruff format --check glag_mm tools tests benchmarks experiments setup.py

test: lint
	$(BIN)/python -m pytest tests

demo: venv
	bash tools/get_fashion_mnist.sh data/fashion-mnist
	$(BIN)/python tools/demo.py --data-root data/fashion-mnist

clean-venv:
	rm -rf $(VENV)
