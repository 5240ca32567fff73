#!/usr/bin/env bash
# Replays every capture of a directory (tcpdump's test captures in ../shared by default) through a
# netisr built with AddressSanitizer, in three configurations that between them take every path
# of the replay: two workstreams with deferred dispatch writing flow records and a conversation
# table; one, direct dispatch, writing an endpoint table; two, hybrid dispatch, the JSON object
# with I/O statistics. The fuzz targets cover the readers and the parser alone; this covers the
# engine, the arena, the tables and the reports on real captures, where their few unsafe types
# would be caught out of bounds or after free.
#
#   Fuzz/asan-replay.sh [DIRECTORY]
#
# Fails on any sanitizer report, any exit by a signal or a trap, and any replay that takes longer
# than a minute (a hang). A damaged capture's exit status (2) is expected: it is reported, not fatal.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
captures="${1:-$root/../shared/captures/tcpdump}"
if [ ! -d "$captures" ]; then
    echo "asan-replay.sh: skipped, no capture directory at $captures (../shared is absent)"
    exit 0
fi

(cd "$root" && swift build -c release --product netisr -Xswiftc -sanitize=address --scratch-path .build-asan \
    > /dev/null)
netisr="$root/.build-asan/release/netisr"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

configurations=(
    "--threads 2 --flows $work/flows.json --conversations tcp"
    "--threads 1 --dispatch direct --endpoints ip"
    "--threads 2 --dispatch hybrid --json --io-stat 1"
)
runs=0
failures=0
for capture in "$captures"/*; do
    [ -f "$capture" ] || continue
    for configuration in "${configurations[@]}"; do
        runs=$((runs + 1))
        status=0
        # exitcode=99: a sanitizer report is told from the replay's own statuses (1, 2).
        ASAN_OPTIONS=detect_leaks=0:exitcode=99 timeout 60 \
            "$netisr" replay --quiet $configuration "$capture" > /dev/null 2> "$work/stderr" || status=$?
        if [ "$status" -gt 2 ] || grep -q "Sanitizer" "$work/stderr"; then
            failures=$((failures + 1))
            echo "FAILED (status $status): netisr replay $configuration $capture" >&2
            head -n 30 "$work/stderr" >&2
        fi
    done
done
echo "asan-replay: $runs replays of $((runs / ${#configurations[@]})) captures, $failures failed"
[ "$failures" -eq 0 ]
