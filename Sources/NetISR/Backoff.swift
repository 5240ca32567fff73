// Backoff: how the engine waits for another thread on its rare slow paths (a worker waiting out
// a hybrid dispatcher, a lossless producer waiting for room): spin briefly, then yield, then sleep.

import CNetISRShim

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

@inline(__always)
func backOff(_ attempt: Int) {
    if attempt < 64 {
        netisr_cpu_relax()
    } else if attempt < 4_096 {
        sched_yield()
    } else {
        usleep(20)
    }
}
