// Backoff: how the engine waits for another thread on its rare slow paths (a worker waiting out
// a hybrid dispatcher, a lossless producer waiting for room): spin briefly, yield a few times,
// then sleep — a lossless producer on its ring's room signal instead (PacketRing).
//
// The yields are few on purpose. A thread still waiting after them waits for a whole handler
// burst of the other side (a full 4,096-packet queue takes milliseconds to drain), and with
// more threads than CPUs every further yield is a context switch that takes CPU from that very
// thread. A 1M-packet replay (reader and two workstreams on two CPUs) made 4–6k yields per run
// with 4,032 allowed per wait; with 8 (and the arena's wait changed alike): 434 → 416 and
// 440 → 410 ms wall, 790 → 750 and 809 → 730 ms CPU in two sittings of 25 interleaved pairs;
// with 256-packet queues 538 → 496 ms, 980 → 790 ms CPU. The engine's own benchmarks, whose
// queues drain within the spins, did not move.

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
    } else if attempt < 72 {
        sched_yield()
    } else {
        usleep(20)
    }
}
