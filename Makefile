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

.PHONY: install train test models bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

train: install
	$(BIN)/mnist-cnn train $(TRAIN_ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

models: install
	$(BIN)/mnist-cnn models

bench: install
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
