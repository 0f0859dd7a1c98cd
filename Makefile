# glag_mm: `make demo` runs the main job, `make test` runs the tests.
# Both create the virtual environment from nothing on first use.
# The first of python3.11, python3.12, python3.13 on PATH (or PYTHON=...).
PYTHONS := python3.11 python3.12 python3.13
PYTHON ?= $(firstword $(foreach p,$(PYTHONS),$(shell command -v $(p) 2>/dev/null)))
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.glag_mm-installed
export OMP_NUM_THREADS ?= 2
export PYTHONWARNINGS ?= ignore::UserWarning:mmcv

.PHONY: venv test lint demo demo-data clean-venv

$(STAMP): requirements.txt requirements-dev.txt requirements/mim.txt setup.py
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "error: no $(PYTHONS) on PATH; install one of them or run make PYTHON=/path/to/python3.X" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12), (3, 13)))' || { echo "error: $(PYTHON) is not Python 3.11, 3.12 or 3.13; run make PYTHON=/path/to/python3.X" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt -r requirements/mim.txt
	$(BIN)/python -m pip install -q --no-deps openmim==0.3.9
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check glag_mm configs tools tests benchmarks experiments setup.py
	$(BIN)/ruff format --check glag_mm tools tests benchmarks experiments setup.py

# two pytest workers (whole files each), one thread each: the two cores
test: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -n 2 --dist loadfile

# The demo's data: Fashion-MNIST, where configs/demo/ read it.
DEMO_DATA := data/fashion-mnist

demo-data:
	bash tools/get_fashion_mnist.sh $(DEMO_DATA)

demo: venv demo-data
	$(BIN)/python tools/demo.py --data-root $(DEMO_DATA)

clean-venv:
	rm -rf $(VENV)
