#!/usr/bin/env bash
# A/B timing of netisr builds on one capture (a fresh copy of it, see below): the builds run
# alternately, ROUNDS times each, and the median wall and CPU (user + system) time of each is
# printed. The host is noisy; only builds measured in the same run compare.
#
#   Benchmarks/ab.sh [--peers] ROUNDS CAPTURE BINARY... [-- REPLAY-OPTIONS...]
#
# --peers runs softflowd, nfpcapd and argus before every netisr run, as `compare.sh` does: on a
# guest whose host backs memory lazily, memory the peers freed is fresh again, and a change in
# how much memory the replay touches shows only then (BENCHMARKS.md, run 21).
# Example: Benchmarks/ab.sh --peers 10 /tmp/netisr-compare-1000000.pcap /tmp/netisr-old .build/release/netisr
set -euo pipefail

peers=0
if [ "${1:-}" = "--peers" ]; then
    peers=1
    shift
fi
if [ $# -lt 3 ]; then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
rounds=$1
capture=$2
shift 2
binaries=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    binaries+=("$1")
    shift
done
[ "${1:-}" = "--" ] && shift
options=("$@")

if [ "$peers" = 1 ]; then
    for peer in softflowd nfpcapd argus; do
        command -v "$peer" >/dev/null || { echo "ab.sh: --peers needs $peer (Benchmarks/compare.sh installs it)" >&2; exit 2; }
    done
fi

run_peers() {
    unshare -n sh -c "ip link set lo up; softflowd -r '$capture' -n 127.0.0.1:9995 -d >/dev/null 2>&1"
    local work
    work=$(mktemp -d)
    unshare -n nfpcapd -r "$capture" -w "$work" >/dev/null 2>&1 || true
    unshare -n argus -r "$capture" -w "$work/argus.out" >/dev/null 2>&1 || true
    rm -rf "$work"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The builds replay a copy written afresh in 2 MiB blocks, as `netisr synth` writes a capture: a
# file's page cache can lose its 2 MiB folios with time (the 406 MB capture, 97% of it mapped by
# 2 MiB entries when written, was 19–28% after some minutes of other work), and a file `cp`
# wrote has none; the reader then spends a sixth of its time populating its windows' 4 KiB
# entries (BENCHMARKS.md, runs 72–75), and a comparison would depend on the file's history.
# Writing the copy also does what an untimed read first did: the first replay of a file left
# idle for half a minute takes 0.30–0.41 s instead of 0.19–0.25 (runs 69–71), which would load
# the first binary's first round.
fresh=$(mktemp "${TMPDIR:-/tmp}/ab-capture.XXXXXX")
trap 'rm -f "$fresh"' EXIT
dd if="$capture" of="$fresh" bs=2M status=none
capture=$fresh

declare -A wall cpu
times=$(mktemp)
for _ in $(seq "$rounds"); do
    for binary in "${binaries[@]}"; do
        [ "$peers" = 1 ] && run_peers
        start=$(date +%s%N)
        /usr/bin/time -f "%U %S" -o "$times" "$binary" replay "$capture" --quiet --json "${options[@]}" >/dev/null
        end=$(date +%s%N)
        wall[$binary]+="$(((end - start) / 1000000)) "
        cpu[$binary]+="$(awk '{printf "%d", ($1 + $2) * 1000}' "$times") "
    done
done
rm -f "$times"
for binary in "${binaries[@]}"; do
    echo "$binary: wall $(echo ${wall[$binary]} | tr ' ' '\n' | median) ms, CPU $(echo ${cpu[$binary]} | tr ' ' '\n' | median) ms  [wall: ${wall[$binary]}]"
done
