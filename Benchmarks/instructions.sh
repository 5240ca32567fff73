#!/usr/bin/env bash
# Instructions a replay executes, counted by cachegrind. Unlike wall times on this shared host,
# the count is the same from run to run, so a change to the per-packet path shows even when its
# time is inside the noise (though fewer instructions need not mean less time: the replay waits
# on memory as much as it executes; BENCHMARKS.md, runs 46–48).
#
#   Benchmarks/instructions.sh [PACKETS] [FLOWS] [TOP]    (defaults: 100000 10000 15)
#
# Builds netisr in release mode with DWARF 4 debug information (valgrind 3.19 cannot read DWARF 5)
# into .build-instructions, writes a synthetic capture of PACKETS packets in FLOWS flows, replays
# it and an empty capture on one workstream under cachegrind, and prints the totals, the
# instructions per packet (start-up subtracted) and the TOP functions by instructions.
set -euo pipefail
packets=${1:-100000}
flows=${2:-10000}
top=${3:-15}
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/.build-instructions"

if ! command -v valgrind >/dev/null; then
    echo "installing valgrind" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; } >/dev/null 2>&1 || {
        echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2
        exit 2
    }
fi
(cd "$root" && swift build -c release --product netisr --build-path "$build" \
    -Xswiftc -dwarf-version=4 -Xcc -gdwarf-4 >&2)
netisr="$build/release/netisr"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$netisr" synth --packets "$packets" --flows "$flows" --seed 1 --out "$work/capture.pcap" >&2
# The empty capture: the pcap file header alone.
head -c 24 "$work/capture.pcap" >"$work/empty.pcap"

count() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$work/$1.out" \
        "$netisr" replay --quiet --json --threads 1 "$work/$1.pcap" >/dev/null 2>"$work/$1.log"
    grep -E 'I +refs' "$work/$1.log" | awk '{gsub(",", "", $NF); print $NF}'
}
total=$(count capture)
startup=$(count empty)
echo "replay of $packets packets / $flows flows, one workstream: $total instructions"
echo "  start-up and exit (an empty capture): $startup"
echo "  per packet: $(( (total - startup) / packets ))"
echo
echo "functions by instructions (source file of the code, then the function it was inlined into):"
cg_annotate --auto=no --show-percs=no "$work/capture.out" 2>/dev/null \
    | grep -E '^ *[0-9,]+ +[^ ]+:' | head -n "$top" | sed "s|$root/||" | swift demangle --simplified
