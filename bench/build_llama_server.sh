#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the llama.cpp that the installed llama-cpp-python vendors
# (its PyPI sdist's vendor/llama.cpp), so the benchmark's peer runs the same ggml as llamaslots.
# Cached: prints the binary's path; a second run with the same version and flags builds nothing.
#
#   bench/build_llama_server.sh                      # CPU, same AMX-off flags as the Makefile
#   CMAKE_ARGS=-DGGML_CUDA=on bench/build_llama_server.sh   # on a GPU machine
#
# Env: PYTHON (default .venv/bin/python), CACHE (default .cache/bench/llama-server),
#      SDIST (a llama_cpp_python-X.tar.gz to use instead of downloading it), JOBS (default nproc).
# Not needed by CI; the tests never build it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CACHE=${CACHE:-.cache/bench/llama-server}
JOBS=${JOBS:-$(nproc)}
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')

# The same flags as the Makefile's build of llama-cpp-python (ggml's AMX kernels crash on this
# machine kind), unless the caller brings their own.
EXTRA=()
if [ "$(uname -m)" = x86_64 ] && [[ "${CMAKE_ARGS:-}" != *CMAKE_C_FLAGS* ]]; then
    NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    EXTRA+=("-DCMAKE_C_FLAGS=$NO_AMX" "-DCMAKE_CXX_FLAGS=$NO_AMX")
fi
KEY=$(printf '%s|%s|%s' "$VERSION" "${CMAKE_ARGS:-}" "${EXTRA[*]:-}" | sha256sum | cut -c1-12)
BIN="$CACHE/llama-server-$VERSION-$KEY"
if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
if [ -z "${SDIST:-}" ]; then
    SDIST="$CACHE/llama_cpp_python-$VERSION.tar.gz"
    if [ ! -f "$SDIST" ]; then
        # pip prepares the sdist's metadata, which needs its build backend: in an isolated env.
        "$PYTHON" -m pip download --no-deps --no-binary :all: -q \
            "llama-cpp-python==$VERSION" -d "$CACHE" >&2
    fi
fi
SRC="$CACHE/src-$VERSION"
if [ ! -f "$SRC/vendor/llama.cpp/CMakeLists.txt" ]; then
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar -xzf "$SDIST" -C "$SRC" --strip-components=1
fi
BUILD="$CACHE/build-$KEY"
# No web UI download (offline machines), no curl, only the server target.
# shellcheck disable=SC2086
cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    "${EXTRA[@]}" ${CMAKE_ARGS:-} >&2
cmake --build "$BUILD" --target llama-server -j "$JOBS" >&2
cp "$BUILD/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
