// The few Linux calls the engine needs that Swift cannot make directly (macros and variadics).
#ifndef CNETISR_SHIM_H
#define CNETISR_SHIM_H

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

#endif
