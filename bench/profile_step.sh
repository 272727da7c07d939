#!/usr/bin/env bash
# Profiles a server under benchmark load with py-spy and reports the Python share of a decode step.
#
# Usage: bench/profile_step.sh [llamaslots|llama-server|llama-cpp-python] [seconds]
# Env:   PYTHON       interpreter for the bench and llamaslots (default: python3)
#        PEER_PYTHON  interpreter with llama-cpp-python's [server] extra (default: $PYTHON)
#        PYSPY        py-spy binary (default: py-spy on PATH; `pip install py-spy` in any venv)
#        CONCURRENCY  concurrent clients during the profile (default 8)
#        OUT          output folder (default .cache/bench/profile)
# Writes $OUT/<target>.raw (py-spy raw stacks, one line per distinct stack), $OUT/<target>-dump.txt
# (one py-spy dump of every thread mid-load) and $OUT/<target>-share.txt (the report).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${1:-llamaslots}
DURATION=${2:-10}
PYTHON=${PYTHON:-python3}
PEER_PYTHON=${PEER_PYTHON:-$PYTHON}
PYSPY=${PYSPY:-py-spy}
CONCURRENCY=${CONCURRENCY:-8}
OUT=${OUT:-.cache/bench/profile}

case "$TARGET" in llamaslots|llama-server|llama-cpp-python) ;; *) echo "usage: $0 [llamaslots|llama-server|llama-cpp-python] [seconds]" >&2; exit 2 ;; esac
if ! command -v "$PYSPY" >/dev/null 2>&1; then
    echo "py-spy not found (looked for '$PYSPY'): pip install py-spy, then set PYSPY=/path/to/py-spy" >&2
    exit 2
fi

mkdir -p "$OUT"
PIDFILE="$OUT/$TARGET.pid"
rm -f "$PIDFILE"
# Enough requests that the level outlasts the profile even at ~400 tok/s.
REQUESTS=$(( (DURATION * 400) / (64 * CONCURRENCY) + 4 ))
"$PYTHON" bench/bench_slots.py --only "$TARGET" --peer-python "$PEER_PYTHON" \
    --concurrency "$CONCURRENCY" --requests-per-client "$REQUESTS" --level-timeout 600 \
    --pid-file "$PIDFILE" >"$OUT/$TARGET-bench.log" 2>&1 &
BENCH=$!
# Stops the bench (and through it the server) however this script ends.
trap 'kill -TERM "$BENCH" 2>/dev/null || true; wait "$BENCH" 2>/dev/null || true' EXIT

for _ in $(seq 240); do
    [ -s "$PIDFILE" ] && break
    if ! kill -0 "$BENCH" 2>/dev/null; then
        echo "the benchmark ended before the server was under load; its log:" >&2
        tail -n 30 "$OUT/$TARGET-bench.log" >&2
        exit 1
    fi
    sleep 0.5
done
[ -s "$PIDFILE" ] || { echo "server not under load after 120 s; see $OUT/$TARGET-bench.log" >&2; exit 1; }
SERVER_PID=$(cat "$PIDFILE")
sleep 2  # let every client's first request reach the decode loop

# --subprocesses: llamaslots runs its engine in a worker process; --native: without native
# frames the time inside llama_decode cannot be told apart from the Python line calling it.
"$PYSPY" dump --pid "$SERVER_PID" --subprocesses --native >"$OUT/$TARGET-dump.txt" 2>&1 || true
"$PYSPY" record --pid "$SERVER_PID" --subprocesses --native --threads --rate 100 \
    --duration "$DURATION" --format raw -o "$OUT/$TARGET.raw"

"$PYTHON" bench/pyspy_share.py "$OUT/$TARGET.raw" | tee "$OUT/$TARGET-share.txt"
echo
echo "raw stacks: $OUT/$TARGET.raw  thread dump: $OUT/$TARGET-dump.txt  bench log: $OUT/$TARGET-bench.log"
