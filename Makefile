# The two commands: `make run` (the default job) and `make test` (the test suite).
# Both create .venv on first use and (re)install the package when its sources change.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SOURCES := $(shell find sparseprop -name '*.py' -o -name '*.pyx' -o -name '*.pxd') setup.py pyproject.toml
BUILD_DEPS := "setuptools>=65" "Cython>=3.0" "numpy>=2.0" wheel

.PHONY: run test test-slow bench clean

run: $(VENV)/.installed
	$(BIN)/sparseprop run

test: $(VENV)/.installed-test
	$(BIN)/pytest tests -q -m "not slow"

test-slow: $(VENV)/.installed-test
	$(BIN)/pytest tests -q -m slow

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_scaling.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(BUILD_DEPS)

$(VENV)/.installed: $(BIN)/python $(SOURCES)
	$(BIN)/python -m pip install -q --no-build-isolation .
	touch $@

$(VENV)/.installed-test: $(BIN)/python $(SOURCES)
	$(BIN)/python -m pip install -q --no-build-isolation ".[test]"
	touch $@ $(VENV)/.installed

clean:
	rm -rf build $(VENV) sparseprop/_core/*.c sparseprop/_core/*.so sparseprop/_core/*.html
