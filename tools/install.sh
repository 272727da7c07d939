#!/usr/bin/env bash
# The one install recipe: the Makefile (so `make test` and CI) and Dockerfile.cuda both run it.
#   tools/install.sh VENV [SPEC]        e.g. tools/install.sh .venv '.[test]'
# Env: PYTHON (default python3), EDITABLE=1 for `pip install -e`, CMAKE_ARGS for llama-cpp-python's
# build (the Makefile passes the AMX-off flags, the image -DGGML_CUDA=on).
set -euo pipefail
VENV=${1:?usage: tools/install.sh VENV [SPEC]}
SPEC=${2:-.}
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --no-cache-dir --upgrade pip
if [ "${EDITABLE:-0}" = 1 ]; then
    "$VENV/bin/python" -m pip install -e "$SPEC"
else
    "$VENV/bin/python" -m pip install --no-cache-dir "$SPEC"
fi
