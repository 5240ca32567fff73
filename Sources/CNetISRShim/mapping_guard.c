// Guarded file mappings: a file mapped into memory that is cut short while mapped (another
// program truncates it) makes the kernel send SIGBUS at the first touch of a page past the new
// end, which would kill the process. Inside a guarded range the handler below instead maps a
// page of 0xFF bytes over the faulting one and lets the access retry: a capture record or block
// header read from it has an impossible length, so the reader reports damage at that offset as
// it would for any corrupt file. Faults outside every guarded range go to the handler installed
// before this one (the Swift runtime's backtracer, or the default action).
//
// Ranges live in a fixed table of atomics: the handler reads it without locks; guarding and
// unguarding take a slot with compare-and-swap. Only async-signal-safe work (system calls,
// stores) happens in the handler.
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <pthread.h>
#include <unistd.h>
#include "CNetISRShim.h"

#define GUARD_SLOTS 64

static _Atomic(uintptr_t) guard_starts[GUARD_SLOTS];
static _Atomic(uintptr_t) guard_ends[GUARD_SLOTS];
static _Atomic(uint64_t) guard_faults;
static struct sigaction previous_action;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int installed;

static int covers(uintptr_t address) {
    for (int slot = 0; slot < GUARD_SLOTS; slot++) {
        uintptr_t start = atomic_load_explicit(&guard_starts[slot], memory_order_acquire);
        if (start != 0 && address >= start && address < atomic_load_explicit(&guard_ends[slot], memory_order_acquire))
            return 1;
    }
    return 0;
}

static void forward(int signal_number, siginfo_t *info, void *context) {
    if (previous_action.sa_flags & SA_SIGINFO) {
        if (previous_action.sa_sigaction) {
            previous_action.sa_sigaction(signal_number, info, context);
            return;
        }
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        previous_action.sa_handler(signal_number);
        return;
    }
    // The default action: restored, the faulting access repeats and ends the process.
    struct sigaction fallback;
    memset(&fallback, 0, sizeof(fallback));
    fallback.sa_handler = SIG_DFL;
    sigaction(signal_number, &fallback, NULL);
}

static void on_bus_error(int signal_number, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    if (info->si_code == BUS_ADRERR && covers(address)) {
        uintptr_t page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
        void *page = (void *)(address & ~(page_size - 1));
        void *filler = mmap(page, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (filler == page) {
            memset(page, 0xFF, page_size);
            atomic_fetch_add_explicit(&guard_faults, 1, memory_order_relaxed);
            return;
        }
    }
    forward(signal_number, info, context);
}

static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = on_bus_error;
    action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    installed = sigaction(SIGBUS, &action, &previous_action) == 0;
}

int netisr_guard_mapping(const void *start, size_t length) {
    pthread_once(&install_once, install);
    if (!installed || start == NULL || length == 0) return -1;
    for (int slot = 0; slot < GUARD_SLOTS; slot++) {
        uintptr_t expected = 0;
        // Claim the slot with a placeholder start that covers nothing until its end is set.
        if (atomic_compare_exchange_strong(&guard_starts[slot], &expected, UINTPTR_MAX)) {
            atomic_store_explicit(&guard_ends[slot], (uintptr_t)start + length, memory_order_release);
            atomic_store_explicit(&guard_starts[slot], (uintptr_t)start, memory_order_release);
            return slot;
        }
    }
    return -1;
}

void netisr_unguard_mapping(int slot) {
    if (slot < 0 || slot >= GUARD_SLOTS) return;
    atomic_store_explicit(&guard_ends[slot], 0, memory_order_release);
    atomic_store_explicit(&guard_starts[slot], 0, memory_order_release);
}

uint64_t netisr_guarded_faults(void) { return atomic_load_explicit(&guard_faults, memory_order_relaxed); }
