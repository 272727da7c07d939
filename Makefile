# The two set-up commands: `make serve` (install + start on the demo model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install serve test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# llama-cpp-python compiles from source (about 10 minutes on 2 cores); pip keeps the
# built wheel in its cache, so later installs take seconds.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/llamaslots run $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)
