// See CPeers.h.
#define _GNU_SOURCE
#include "CPeers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

uint64_t peer_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int peer_pin_current_thread(int cpu) {
    if (cpu < 0) return 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0 && cpu >= cpus) cpu = cpu % (int)cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static inline void relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

typedef struct {
    _Alignas(128) _Atomic size_t head;  // next slot the consumer reads; written by the consumer
    size_t tail_seen;                   // consumer's copy of tail
    _Alignas(128) _Atomic size_t tail;  // next slot the producer writes; written by the producer
    size_t head_seen;                   // producer's copy of head
    _Alignas(128) uintptr_t *slots;
    size_t mask;
    size_t items;
    size_t burst;
    int consumer_cpu;
    uint64_t end_ns;
    uintptr_t checksum;
} spsc_ring;

static void *spsc_consumer(void *arg) {
    spsc_ring *r = arg;
    peer_pin_current_thread(r->consumer_cpu);
    size_t head = 0;
    uintptr_t sum = 0;
    while (head < r->items) {
        if (r->tail_seen == head) {
            while ((r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire)) == head) relax();
        }
        size_t available = r->tail_seen - head;
        size_t n = available < r->burst ? available : r->burst;
        for (size_t i = 0; i < n; i++) sum += r->slots[(head + i) & r->mask];
        head += n;
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    r->end_ns = peer_now_ns();
    r->checksum = sum;
    return NULL;
}

double peer_spsc_ring_run(size_t items, size_t burst, size_t capacity, int producer_cpu, int consumer_cpu) {
    spsc_ring *r = aligned_alloc(128, sizeof(spsc_ring));
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->tail_seen = 0;
    r->head_seen = 0;
    r->slots = aligned_alloc(128, capacity * sizeof(uintptr_t));
    r->mask = capacity - 1;
    r->items = items;
    r->burst = burst;
    r->consumer_cpu = consumer_cpu;
    pthread_t consumer;
    pthread_create(&consumer, NULL, spsc_consumer, r);
    peer_pin_current_thread(producer_cpu);
    uint64_t start = peer_now_ns();
    size_t tail = 0;
    while (tail < items) {
        size_t n = items - tail < burst ? items - tail : burst;
        while (tail + n - r->head_seen > capacity) {
            r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
            if (tail + n - r->head_seen > capacity) relax();
        }
        for (size_t i = 0; i < n; i++) r->slots[(tail + i) & r->mask] = (uintptr_t)(tail + i + 1);
        tail += n;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    pthread_join(consumer, NULL);
    double ns = (double)(r->end_ns - start) / (double)items;
    free(r->slots);
    free(r);
    return ns;
}

typedef uintptr_t (*item_function)(uintptr_t, uintptr_t);

__attribute__((noinline)) static uintptr_t accumulate(uintptr_t sum, uintptr_t item) { return sum + item; }

static item_function volatile opaque_function = accumulate;

double peer_function_pointer_run(size_t calls) {
    item_function f = opaque_function;
    uintptr_t sum = 0;
    uint64_t start = peer_now_ns();
    for (size_t i = 0; i < calls; i++) sum = f(sum, (uintptr_t)i);
    uint64_t end = peer_now_ns();
    static volatile uintptr_t sink;
    sink = sum;
    return (double)(end - start) / (double)calls;
}
