# Two entry points on a fresh machine with Python >= 3.11:
#   make train   set up .venv and train the default model on MNIST (a run folder under runs/)
#   make test    set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Use the repo's sibling data folder when it exists (as in CI); otherwise the usual search applies.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/mnist),)
export MNIST_CNN_DATA_DIR ?= $(SHARED_DATA)
export MNIST_CNN_TEST_DATA ?= $(SHARED_DATA)
endif
TRAIN_ARGS ?=
PYTEST_ARGS ?=
# Two test processes (pytest-xdist), each test file whole in one of them so that its module
# fixtures are made once: the suite took 570 s instead of 870 s on 2 cores (AMD EPYC,
# 2026-12-06), as much of it waits on subprocesses, imports and servers; handing out single
# tests instead (`--dist worksteal`) took 592 s. Not `-n auto`: each process runs TensorFlow
# on every core, and holds its own models in memory.
PYTEST_WORKERS ?= -n 2 --dist loadfile

.PHONY: install install-dev install-bench train test models reader bench clean

# The package alone for training; test tools and the web server on top for the tests.
# PyTorch (the benchmark's reference contender) is its own target: `make test` never needs
# it, and the tests of that contender skip, saying so, without it.
install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

install-bench: $(VENV)/.installed-bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,serve]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

train: install
	$(BIN)/mnist-cnn train $(TRAIN_ARGS)

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

models: install
	$(BIN)/mnist-cnn models

# Retrain the shipped model's touching-digit reader as it was made: 9 epochs from scratch,
# then 8 more on new strips at a lower rate, then 10 more at a lower one still (about 50 + 45
# + 55 minutes on 2 cores with AMX: width 32, bfloat16; without AMX leave out --precision,
# about twice as long), then ship it beside the model with its checked int8 LiteRT twin and
# digest. Before committing,
# `benchmarks/read_numbers.py mnist --against OLD/reader.keras` (the previous one, from git)
# says whether the new one reads more numbers right.
reader: install
	mkdir -p build/reader
	$(BIN)/mnist-cnn train-reader -o build/reader/first.keras --width 32 --context gru --precision bfloat16 \
		--warp 0.5 --strips 100000 --epochs 9 --learning-rate 2e-3 --seed 3
	$(BIN)/mnist-cnn train-reader -o build/reader/second.keras --init build/reader/first.keras --width 32 \
		--context gru --precision bfloat16 --warp 0.5 --strips 100000 --epochs 8 --learning-rate 1e-3 --seed 4
	$(BIN)/mnist-cnn train-reader -o build/reader/reader.keras --init build/reader/second.keras --width 32 \
		--context gru --precision bfloat16 --warp 0.5 --strips 100000 --epochs 10 --learning-rate 6e-4 --seed 5
	$(BIN)/python tools/ship_reader.py build/reader/reader.keras

bench: install-dev install-bench
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
