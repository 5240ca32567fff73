// Thin wrappers over glibc's CPU-affinity macros, the spin-wait hint, membarrier (no glibc
// wrapper), mremap (variadic, so Swift cannot call it) and MADV_POPULATE_READ/WRITE (missing
// from older headers); see CNetISRShim.h.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CNetISRShim.h"

__thread uint64_t netisr_thread_engine_id;
__thread const void *netisr_thread_context;

int netisr_bind_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int netisr_available_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
    int count = CPU_COUNT(&set);
    return count > 0 ? count : 1;
}

int netisr_name_current_thread(const char *name) { return pthread_setname_np(pthread_self(), name); }

int netisr_current_cpu(void) { return sched_getcpu(); }

void netisr_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void *netisr_map_table(size_t size) {
    void *address = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return address == MAP_FAILED ? NULL : address;
}

void *netisr_remap_table(void *address, size_t old_size, size_t new_size) {
    void *moved = mremap(address, old_size, new_size, MREMAP_MAYMOVE);
    return moved == MAP_FAILED ? NULL : moved;
}

void netisr_unmap_table(void *address, size_t size) { munmap(address, size); }

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

void netisr_populate(void *address, size_t size) { (void)madvise(address, size, MADV_POPULATE_READ); }

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void netisr_populate_writable(void *address, size_t size) { (void)madvise(address, size, MADV_POPULATE_WRITE); }

int netisr_register_process_barrier(void) {
    long supported = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (supported < 0 || !(supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return 0;
    return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

int netisr_process_barrier(void) {
    return syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : errno;
}
