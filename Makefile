# The two set-up commands: `make serve` (install + start on the demo model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install serve test rebuild-llama

# ggml's AMX kernels, which -march=native turns on for Sapphire Rapids and newer Xeons, die with
# SIGILL in llama-cpp-python 0.3.36 (tile config lost; ggml-org/llama.cpp PR 26954). This very
# machine kind has AMX, so build without them; AVX-512 and the rest stay native.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
override CMAKE_ARGS += -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
endif
export CMAKE_ARGS

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# llama-cpp-python compiles from source (about 10 minutes on 2 cores); pip keeps the
# built wheel in its cache, so later installs take seconds.
# tools/install.sh is the recipe Dockerfile.cuda runs too.
$(VENV)/.installed: pyproject.toml tools/install.sh | $(BIN)/python
	PYTHON=$(PYTHON) EDITABLE=1 tools/install.sh $(VENV) '.[test]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/llamaslots run $(ARGS)

# The type check first (seconds), then the suite.
test: install
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q $(ARGS)

# Rebuild llama-cpp-python with this CMAKE_ARGS (e.g. CMAKE_ARGS=-DGGML_CUDA=on), past pip's
# cache, which may hold a CPU build of the same version.
rebuild-llama: install
	$(BIN)/python -m pip install --no-cache-dir --force-reinstall --no-deps 'llama-cpp-python==0.3.36'
