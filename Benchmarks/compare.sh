#!/usr/bin/env bash
# Side-by-side comparison: the engine against a C SPSC ring and C function-pointer call, GCD,
# SwiftNIO, AsyncStream and a mutex-protected Deque, in one run, interleaved, medians over rounds.
# Prints a table and, as its last line, one JSON object of median ratios
# (netisr throughput ÷ peer throughput; > 1 means netisr is faster).
#
#   Benchmarks/compare.sh [--quick] [--svg FILE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) args+=(--quick) ;;
        --svg) args+=(--svg "$2"); shift ;;
        *) echo "usage: compare.sh [--quick] [--svg FILE]" >&2; exit 2 ;;
    esac
    shift
done
cd "$here"
swift build -c release --product Compare >&2
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ)"
exec "$here/.build/release/Compare" "${args[@]}"
