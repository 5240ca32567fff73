#!/usr/bin/env bash
# Side-by-side comparison: the engine against a C SPSC ring and C function-pointer call, GCD,
# SwiftNIO, AsyncStream and a mutex-protected Deque, in one run, interleaved, medians over rounds.
# Prints a table and, as its last line, one JSON object of median ratios
# (netisr throughput ÷ peer throughput; > 1 means netisr is faster).
#
#   Benchmarks/compare.sh [--quick] [--svg FILE] [--no-replay]
#
# End to end (unless --no-replay): `netisr replay` against softflowd -r, nfpcapd -r and argus -r
# and tshark's conversation statistics (`-z conv,…`, the four tables netisr keeps) on the same
# capture made by `netisr synth` (1M packets, 100k flows; 200k with --quick), in 5 interleaved
# rounds (1 with --quick), each ratio the median of the rounds' own ratios: this host's speed
# drifts by a third between phases of a minute or so, and a peer timed once (tshark, ~20 s, until
# run 49) was paired with netisr runs of another phase. As softflowd exports its flows
# and nfpcapd and argus write theirs, each round also times netisr writing its flow records
# (`--flows FILE.ipfix`; "netisr+flows"). The Debian packages are installed when missing; the peers
# run under `unshare -n` (loopback only).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
args=()
quick=0
replay=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) args+=(--quick); quick=1 ;;
        --svg) args+=(--svg "$(realpath -m "$2")"); shift ;;  # the runner runs in Benchmarks/
        --no-replay) replay=0 ;;
        *) echo "usage: compare.sh [--quick] [--svg FILE] [--no-replay]" >&2; exit 2 ;;
    esac
    shift
done

# Wall time of a command in seconds, to the millisecond (`time -f %e` gave hundredths: 5% of a
# 0.2 s replay); its output is discarded and its exit status ignored, as before.
seconds() {
    local start=$EPOCHREALTIME
    "$@" >/dev/null 2>&1 || true
    LC_ALL=C awk -v start="$start" -v end="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", end - start }'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

if [ "$replay" = 1 ]; then
    root="$(cd "$here/.." && pwd)"
    (cd "$root" && swift build -c release --product netisr >&2)
    netisr="$root/.build/release/netisr"
    missing=""
    command -v softflowd >/dev/null || missing="$missing softflowd"
    command -v nfpcapd >/dev/null || missing="$missing nfdump"
    command -v argus >/dev/null || missing="$missing argus-server"
    command -v tshark >/dev/null || missing="$missing tshark"
    if [ -n "$missing" ]; then
        echo "installing:$missing" >&2
        # A fresh machine's package lists are empty: update them first, as .ci/run does.
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >/dev/null 2>&1 \
            || echo "could not install:$missing" >&2
    fi
    packets=$([ "$quick" = 1 ] && echo 200000 || echo 1000000)
    flows=$([ "$quick" = 1 ] && echo 20000 || echo 100000)
    rounds=$([ "$quick" = 1 ] && echo 1 || echo 5)
    capture="/tmp/netisr-compare-$packets.pcap"
    # Written afresh every run (the same bytes for the same seed), so every run starts from the
    # same page cache: the file in the 2 MiB pages synth's 2 MiB writes leave. A file kept from an
    # earlier run may have been partly evicted since and read back by whichever program came
    # first, in smaller pages (BENCHMARKS.md, run 39).
    rm -f "$capture"
    "$netisr" synth --packets "$packets" --flows "$flows" --seed 1 --out "$capture" >&2
    work=$(mktemp -d)
    # Before its timed run, each program runs once, untimed, on a capture of a thousand packets,
    # and the capture is read: the program's binary and libraries and the capture are then in
    # the page cache, as "from page cache" means. Without it, each timed run found what this
    # host had paged out since the program's last run, a quarter of a minute before: the host
    # pages out idle page cache by itself (DAMON; BENCHMARKS.md, runs 76–78), and a program that
    # runs for a fifth of a second paid that as much as one that runs for twelve.
    "$netisr" synth --packets 1000 --flows 100 --seed 1 --out "$work/warm.pcap" >&2
    # Each program as a function of the capture it reads; what they write goes to $work.
    netisr_on() { "$netisr" replay "$1" --quiet --json; }
    flows_on() { "$netisr" replay "$1" --quiet --json --flows "$work/flows.ipfix"; }
    softflowd_on() { unshare -n sh -c "ip link set lo up; softflowd -r '$1' -n 127.0.0.1:9995 -d >/dev/null 2>&1"; }
    nfpcapd_on() { unshare -n nfpcapd -r "$1" -w "$work/nf"; }
    argus_on() { unshare -n argus -r "$1" -w "$work/argus.out"; }
    tshark_on() { tshark -n -q -r "$1" -z conv,tcp -z conv,udp -z conv,ip -z conv,ipv6; }
    clean() {
        rm -rf "$work/flows.ipfix" "$work/nf" "$work/argus.out"
        mkdir -p "$work/nf"
    }
    # measure KEY: warms KEY's program, then times it on the capture (outputs cleaned untimed).
    declare -A times
    measure() {
        clean
        "$1_on" "$work/warm.pcap" >/dev/null 2>&1 || true
        clean
        cat "$capture" >/dev/null
        times[$1]+="$(seconds "$1_on" "$capture") "
    }
    for round in $(seq "$rounds"); do
        measure netisr
        measure flows
        for peer in softflowd nfpcapd argus tshark; do
            if command -v "$peer" >/dev/null; then measure "$peer"; fi
        done
    done
    rm -rf "$work"
    ours=$(echo ${times[netisr]} | tr ' ' '\n' | median)
    echo "replay of $packets packets / $flows flows (seconds, median of $rounds): netisr $ours  [${times[netisr]}]" >&2
    echo "  netisr+flows $(echo ${times[flows]} | tr ' ' '\n' | median)  [${times[flows]}]" >&2
    for peer in softflowd nfpcapd argus tshark; do
        [ -n "${times[$peer]:-}" ] || continue
        theirs=$(echo ${times[$peer]} | tr ' ' '\n' | median)
        echo "  $peer $theirs  [${times[$peer]}]" >&2
        # Each round's peer time over the same round's netisr time.
        args+=("--extra=replay_vs_$peer=$(echo ${times[$peer]} | tr ' ' ',')/$(echo ${times[netisr]} | tr ' ' ',')")
    done
    if [ -n "${times[softflowd]:-}" ]; then
        args+=("--extra=replay_with_flows_vs_softflowd=$(echo ${times[softflowd]} | tr ' ' ',')/$(echo ${times[flows]} | tr ' ' ',')")
    fi
fi
cd "$here"
swift build -c release --product Compare >&2
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ)"
exec "$here/.build/release/Compare" "${args[@]}"
