#!/usr/bin/env bash
# Where a replay's threads spend its time: runs one `netisr replay` and prints, every INTERVAL
# milliseconds, how much of a CPU each of its threads used since the last line (from each
# thread's `/proc/PID/task/TID/schedstat`, nanoseconds on the CPU; the process's tick-based
# counters are too coarse for a 0.2 s run). Thread 0 is the main thread (the reader); the
# workers follow in the order they appear. It showed the phases of BENCHMARKS.md's runs 76–78:
# the main thread alone at both ends, the workers saturated while flows are new, then the reader.
#
#   Benchmarks/timeline.sh [--interval MS] CAPTURE [BINARY] [-- REPLAY-OPTIONS...]
#
# INTERVAL defaults to 10 ms. A running thread's count is brought up to date at the scheduler's
# ticks, so one line can show a saturated thread at 77% and the next at 155%: read the average
# of a few lines. BINARY defaults to .build/release/netisr. The capture and the binary are read
# once first, so the replay finds them in the page cache (this host pages out idle page cache:
# runs 76–78). The sampler is a small C program, built with the toolchain's clang (or cc).
set -euo pipefail

interval=10
if [ "${1:-}" = "--interval" ]; then
    interval=$2
    shift 2
fi
if [ $# -lt 1 ]; then
    sed -n '2,15p' "$0" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
capture=$1
shift
binary="$root/.build/release/netisr"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    binary=$1
    shift
fi
[ "${1:-}" = "--" ] && shift
[ -x "$binary" ] || { echo "timeline.sh: no $binary (swift build -c release)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/sampler.c" <<'EOF'
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { maximumThreads = 64 };

static double milliseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}

// argv[1]: the interval in ms; argv[2...]: the command. Its standard output goes to /dev/null.
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    useconds_t interval = (useconds_t)(atof(argv[1]) * 1000);
    double start = milliseconds();
    pid_t child = fork();
    if (child == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execv(argv[2], argv + 2);
        _exit(127);
    }
    int threads[maximumThreads];
    long long previous[maximumThreads] = {0};
    int count = 0;
    double last = start;
    for (;;) {
        int status;
        if (waitpid(child, &status, WNOHANG) == child) break;
        char path[128];
        snprintf(path, sizeof path, "/proc/%d/task", child);
        DIR *tasks = opendir(path);
        if (!tasks) break;
        double now = milliseconds();
        printf("%6.0f ms", now - start);
        struct dirent *entry;
        while ((entry = readdir(tasks))) {
            if (entry->d_name[0] == '.') continue;
            int thread = atoi(entry->d_name), index = 0;
            while (index < count && threads[index] != thread) index++;
            if (index == count) {
                if (count == maximumThreads) continue;
                threads[count++] = thread;
            }
            snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", child, thread);
            FILE *stat = fopen(path, "r");
            long long onCPU;
            if (!stat) continue;
            if (fscanf(stat, "%lld", &onCPU) == 1) {
                printf("  %d:%4.0f%%", index, (onCPU - previous[index]) / 1e4 / (now - last));
                previous[index] = onCPU;
            }
            fclose(stat);
        }
        closedir(tasks);
        printf("\n");
        last = now;
        usleep(interval);
    }
    printf("exited after %.1f ms\n", milliseconds() - start);
    return 0;
}
EOF
compiler=$(command -v clang || command -v cc) || { echo "timeline.sh: needs clang or cc" >&2; exit 2; }
"$compiler" -O2 -o "$work/sampler" "$work/sampler.c"
cat "$capture" "$binary" >/dev/null
"$work/sampler" "$interval" "$binary" replay "$capture" --quiet --json "$@"
