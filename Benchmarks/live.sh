#!/usr/bin/env bash
# Live capture under load: tcpreplay sends a synthesized capture at top speed into one end of a
# veth pair (between two network namespaces made here and removed afterwards); the other end is
# read by `tcpdump -w /dev/null`, `netisr capture` (one reader) and `netisr capture --fanout`, in
# turn, interleaved, ROUNDS times. Prints packets received, kernel drops and CPU time per packet
# (user + system, from /usr/bin/time). Needs root, iproute2, tcpreplay and tcpdump.
#
#   Benchmarks/live.sh [ROUNDS] [PACKETS]
set -euo pipefail
rounds="${1:-3}"
packets="${2:-300000}"
root="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$root" && swift build -c release --product netisr >&2)
netisr="$root/.build/release/netisr"
tag="lb$$"
cleanup() { ip netns delete "${tag}a" 2>/dev/null || true; ip netns delete "${tag}b" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "${tag}a" && ip netns add "${tag}b"
ip link add "${tag}x" type veth peer name "${tag}y"
ip link set "${tag}x" netns "${tag}a" && ip link set "${tag}y" netns "${tag}b"
for side in a:x b:y; do
    ns="${tag}${side%%:*}"; link="${tag}${side##*:}"
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" ip link set "$link" mtu 1600 up
done
capture="/tmp/netisr-live-$packets.pcap"
[ -f "$capture" ] || "$netisr" synth --packets "$packets" --flows 10000 --seed 3 --out "$capture" >&2
send() { sleep 1; ip netns exec "${tag}a" tcpreplay -q -t -i "${tag}x" "$capture" >/dev/null 2>&1; }
measure() {  # name, command…: prints "name received dropped cpu_ns_per_packet"
    local name="$1"; shift
    send &
    local sender=$!
    local out
    out=$( { /usr/bin/time -f "TIME %U %S" ip netns exec "${tag}b" "$@"; } 2>&1 ) || true
    wait "$sender"
    local cpu
    cpu=$(echo "$out" | awk '/^TIME/ {print $2 + $3}')
    case "$name" in
        tcpdump)
            local received dropped
            received=$(echo "$out" | awk '/packets captured/ {print $1}')
            dropped=$(echo "$out" | awk '/packets dropped by kernel/ {print $1}')
            echo "$name $received $dropped $(awk -v c="$cpu" -v n="$received" 'BEGIN {printf "%.0f", n ? c * 1e9 / n : 0}')"
            ;;
        *)
            echo "$out" | grep '^{' | python3 -c "
import json, sys
d = json.load(sys.stdin)
drops = dict(d['drops'])
n = d['frames']
print('$name', n, drops.get('kernel', 0), round($cpu * 1e9 / n) if n else 0)"
            ;;
    esac
}
seconds=$(( packets / 100000 + 4 ))
echo "name received kernel_dropped cpu_ns_per_packet"
for round in $(seq "$rounds"); do
    measure tcpdump timeout "$seconds" tcpdump -i "${tag}y" -w /dev/null -q
    measure netisr "$netisr" capture -i "${tag}y" --duration "$seconds" --json
    measure netisr-fanout "$netisr" capture -i "${tag}y" --duration "$seconds" --fanout --json
done
