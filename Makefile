# make test   create .venv if missing, install whitebox with its test extra, run the tests
# make smoke  the whole DAG on CPU with synthetic data -> paper/main.pdf (a few minutes)
# make run    the full reproduction without conda -> paper/main.pdf
# make bench  speed checks (benchmarks/), reported as ratios against baselines
# make standin  the CIFAR-2 and MNIST experiments on the offline data of ../shared/data
#             (genuine MNIST; CIFAR-10 re-encoded as JPEG, stamped as such) in build/standin/,
#             then their claims, accuracies, figure and PDF (1.5-2 h on 2 CPU cores)
# make lint   ruff and snakemake --lint

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV)/bin)
INSTALLED := $(VENV)/.installed
CORES ?= all

# Rules call `python -m whitebox`: put the venv's python first on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: test smoke run bench standin lint clean-smoke

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

test: $(INSTALLED)
	$(BIN)/python -m pytest

smoke: $(INSTALLED)
	$(BIN)/snakemake --profile profiles/smoke

run: $(INSTALLED)
	$(BIN)/snakemake --cores $(CORES) --show-failed-logs all

bench: $(INSTALLED)
	$(BIN)/python benchmarks/run.py

standin: $(INSTALLED)
	$(BIN)/python benchmarks/standin.py

lint: $(INSTALLED)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakemake --lint
