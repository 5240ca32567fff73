// The C peers the engine is measured against, and the timing and pinning helpers the runner
// needs. Written for this project (no code taken from DPDK or elsewhere).
#ifndef CPEERS_H
#define CPEERS_H

#include <stddef.h>
#include <stdint.h>

/// Monotonic time in nanoseconds.
uint64_t peer_now_ns(void);

/// Pins the calling thread to `cpu` (ignored if the CPU does not exist). Returns 0 on success.
int peer_pin_current_thread(int cpu);

/// Moves `items` pointer-sized items from a producer thread pinned to `producer_cpu` to a consumer
/// thread pinned to `consumer_cpu` through a lock-free single-producer single-consumer ring of
/// `capacity` slots (a power of two), `burst` items per push and pop (1 = single items). Head and
/// tail sit 128 bytes apart and each side caches the other's index. Returns nanoseconds per item,
/// measured from the first push to the last item consumed.
double peer_spsc_ring_run(size_t items, size_t burst, size_t capacity, int producer_cpu, int consumer_cpu);

/// Calls a function through a pointer the compiler cannot see through, `calls` times, each on one
/// pointer-sized item. Returns nanoseconds per call.
double peer_function_pointer_run(size_t calls);

#endif
