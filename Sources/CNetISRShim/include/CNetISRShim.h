// The few Linux calls the engine needs that Swift cannot make directly (macros and variadics).
#ifndef CNETISR_SHIM_H
#define CNETISR_SHIM_H

#include <stddef.h>
#include <stdint.h>

/// Binds the calling thread to one CPU. Returns 0 on success, an errno value otherwise.
int netisr_bind_current_thread(int cpu);

/// The number of CPUs this process may run on (its affinity mask), at least 1.
int netisr_available_cpus(void);

/// The CPU the calling thread runs on now, or -1.
int netisr_current_cpu(void);

/// Names the calling thread (at most 15 bytes are kept). Returns 0 or an errno value.
int netisr_name_current_thread(const char *name);

/// A spin-wait hint to the processor (PAUSE on x86, YIELD on Arm).
void netisr_cpu_relax(void);

/// Asks the processor to start loading the cache line holding `address` (a hint: it never
/// faults, whatever the address).
static inline void netisr_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

/// Registers the process for process-wide memory barriers (Linux `membarrier`, private expedited
/// command, 4.14 and later). Returns 1 if `netisr_process_barrier` is available, 0 if not (an older
/// kernel, or a sandbox that forbids the call). Safe to call more than once.
int netisr_register_process_barrier(void);

/// Makes every thread of the process that is running now execute a full memory barrier before it
/// returns (threads not running will at their next switch in). Only after
/// `netisr_register_process_barrier` returned 1; returns 0, or an errno value.
int netisr_process_barrier(void);

/// Keeps the compiler from moving memory accesses across this point (no instruction is emitted).
static inline void netisr_compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

/// Maps `size` bytes (a multiple of the page size) of zeroed private memory for a large table.
/// NULL on failure.
void *netisr_map_table(size_t size);

/// Backs `size` bytes of a private writable mapping at `address` (page-aligned) with memory now,
/// in one call instead of a page fault per page. A hint: a kernel before 5.14 does nothing, and the
/// pages are backed at their first write as usual.
void netisr_populate_writable(void *address, size_t size);

/// Grows a mapping made by `netisr_map_table` from `old_size` to `new_size` bytes, moving its
/// pages rather than copying them if it cannot grow in place. NULL on failure (the old mapping
/// is then unchanged).
void *netisr_remap_table(void *address, size_t old_size, size_t new_size);

/// Unmaps a mapping made by `netisr_map_table` or `netisr_remap_table`.
void netisr_unmap_table(void *address, size_t size);

/// Fills in the page tables of a mapping's pages (`MADV_POPULATE_READ`), reading them in as
/// needed; where the kernel cannot (before Linux 5.14), the pages are left to fault in when read.
void netisr_populate(void *address, size_t size);

/// Guards `length` bytes from `start`, where files are mapped: a page of a mapped file that no
/// longer exists (the file was cut short) reads as 0xFF bytes instead of raising SIGBUS (see
/// mapping_guard.c). Returns a slot for `netisr_unguard_mapping`, or -1 if the range cannot be
/// guarded (files must then be read, not mapped).
int netisr_guard_mapping(const void *start, size_t length);

/// Ends the guard `netisr_guard_mapping` returned `slot` for.
void netisr_unguard_mapping(int slot);

/// How many pages the guard has filled in since the process started.
uint64_t netisr_guarded_faults(void);

/// The calling thread's cached (engine, producer context) pair: one entry per thread, so the
/// packet path finds its per-thread state without a lock or a system call.
/// Engines are told apart by a unique id, never by address (a new engine may reuse a freed one's).
extern __thread uint64_t netisr_thread_engine_id;
extern __thread const void *netisr_thread_context;

static inline const void *netisr_thread_cached_context(uint64_t engine_id) {
    return netisr_thread_engine_id == engine_id ? netisr_thread_context : (const void *)0;
}

static inline void netisr_thread_cache(uint64_t engine_id, const void *context) {
    netisr_thread_engine_id = engine_id;
    netisr_thread_context = context;
}

#endif
