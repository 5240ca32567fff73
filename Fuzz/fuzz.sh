#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (Swift's -sanitize=fuzzer,address).
#
#   Fuzz/fuzz.sh build                    build every target into .build-fuzz/
#   Fuzz/fuzz.sh run TARGET SECONDS [ARGS] fuzz one target (pcap, pcapng, parser, filter, gzip) from its corpus
#   Fuzz/fuzz.sh smoke [SECONDS]          every target briefly with a fixed seed (what CI runs; adds nothing to the corpus)
#   Fuzz/fuzz.sh minimize TARGET          shrink Fuzz/corpus/TARGET to the inputs that add coverage
#
# Seeds are tcpdump's test captures in ../shared/captures/tcpdump, read in place (never copied
# into the project). Fuzz/corpus/TARGET (committed) holds the inputs the fuzzer itself found
# interesting; new ones are added there. Crashes go to .build-fuzz/crashes/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$root/.build-fuzz"
sources=$(find "$root/Sources/PacketWire" -name '*.swift' -not -path '*/Live/*' | sort)

build() {
    mkdir -p "$out"
    for target in pcap pcapng parser filter gzip; do
        case $target in
            gzip) file=FuzzGzip ;;
            pcap) file=FuzzPcap ;;
            pcapng) file=FuzzPcapng ;;
            parser) file=FuzzParser ;;
            filter) file=FuzzFilter ;;
        esac
        swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name Fuzz$target \
            $sources "$here/Targets/$file.swift" "$here/Targets/FuzzSupport.swift" -o "$out/fuzz-$target"
    done
}

# A directory of links to the shared captures under 64 KiB, as read-only seeds.
seeds() {
    local shared="$root/../shared/captures/tcpdump" dir="$out/seeds"
    mkdir -p "$dir"
    if [ -d "$shared" ] && [ -z "$(ls -A "$dir")" ]; then
        find "$shared" -maxdepth 1 -type f -size -64k | while read -r f; do ln -sf "$f" "$dir/"; done
    fi
    echo "$dir"
}

# Fuzzes TARGET from its corpus and the seeds; new inputs go to WRITABLE (its corpus by default).
run() {
    local target="$1" seconds="$2" writable="${WRITABLE:-$here/corpus/$1}"
    shift 2
    [ -x "$out/fuzz-$target" ] || build
    mkdir -p "$here/corpus/$target" "$writable" "$out/crashes"
    local corpora=("$writable")
    [ "$writable" = "$here/corpus/$target" ] || corpora+=("$here/corpus/$target")
    "$out/fuzz-$target" "${corpora[@]}" "$(seeds)" -max_total_time="$seconds" -max_len=65536 \
        -artifact_prefix="$out/crashes/$target-" -print_final_stats=1 "$@"
}

minimize() {
    local target="$1" merged="$out/merged-$1"
    rm -rf "$merged" && mkdir -p "$merged"
    "$out/fuzz-$target" -merge=1 "$merged" "$here/corpus/$target" >/dev/null 2>&1
    rm -rf "$here/corpus/$target" && mv "$merged" "$here/corpus/$target"
}

case "${1:-}" in
    build) build ;;
    run) shift; run "$@" ;;
    smoke)
        seconds="${2:-20}"
        build
        for target in pcap pcapng parser filter gzip; do
            # What a smoke run finds stays out of the committed corpus (`run` and `minimize` add to it).
            rm -rf "$out/smoke-$target"
            WRITABLE="$out/smoke-$target" run "$target" "$seconds" -seed=1 2>&1 |
                grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || true
            [ -z "$(ls -A "$out/crashes" 2>/dev/null)" ] || { echo "fuzzing found a crash: $(ls "$out/crashes")" >&2; exit 1; }
        done
        ;;
    minimize) minimize "$2" ;;
    *) echo "usage: fuzz.sh build|run TARGET SECONDS|smoke [SECONDS]|minimize TARGET" >&2; exit 2 ;;
esac
