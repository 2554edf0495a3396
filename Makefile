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

.PHONY: install install-dev train test models bench clean

# The package alone for training; test tools, the web server and the benchmark's PyTorch
# reference on top for the tests.
install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,serve,bench]'
	touch $@ $(VENV)/.installed

train: install
	$(BIN)/mnist-cnn train $(TRAIN_ARGS)

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

models: install
	$(BIN)/mnist-cnn models

bench: install-dev
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
