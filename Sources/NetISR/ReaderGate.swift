// ReaderGate: lets a control call (unregister, stop) wait until no thread can still be using
// a protocol registration it has just unpublished, without a lock on the packet path
// (the role of FreeBSD's `netisr_rmlock`).
//
// Readers (dispatching threads and workers) enter before loading a registration pointer and
// exit when done with it. A reader counts itself in `counters[epoch][stripe]`: stripes spread
// threads over separate cache lines (workers get one each), so concurrent readers rarely share
// a line; epochs let a writer wait only for readers that started before its change.
//
// Protocol (all steps sequentially consistent):
// - reader: e = epoch; counters[e][s] += 1; if epoch != e, undo and retry; … load pointer, use it …;
//   counters[e][s] -= 1.
// - writer (serialized by the caller): store the new pointer; flip the epoch; wait until every
//   counter of the old epoch is zero.
// A reader that passed the epoch re-check after the flip sees the new pointer; one that passed it
// before is counted in the old epoch, which the writer waits out. New readers use the new epoch,
// so the wait cannot starve.

import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

final class ReaderGate: @unchecked Sendable {  // unchecked: counters are atomics in raw memory it owns
    private struct Counter: ~Copyable {
        let readers = Atomic<Int>(0)
        let padding = CacheLinePadding()
    }

    private let epoch = Atomic<Int>(0)
    private let counters: UnsafeMutablePointer<Counter>
    private let stripeCount: Int
    private let callerStripes: Int

    /// A gate with one private stripe per worker and `callerStripes` shared by other threads.
    init(workerStripes: Int, callerStripes: Int = 16) {
        self.callerStripes = callerStripes
        self.stripeCount = workerStripes + callerStripes
        self.counters = .allocate(capacity: 2 * stripeCount)
        for index in 0..<(2 * stripeCount) {
            (counters + index).initialize(to: Counter())
        }
    }

    deinit {
        counters.deinitialize(count: 2 * stripeCount)
        counters.deallocate()
    }

    /// The stripe of worker `index`.
    func workerStripe(_ index: Int) -> Int { callerStripes + index }

    /// A stripe for the calling thread, chosen from its identity.
    func callerStripe() -> Int {
        let identity = UInt(bitPattern: Int(bitPattern: UInt(pthread_self())))
        return (Int(truncatingIfNeeded: (identity >> 12) &* 0x9E37_79B9) & Int.max) % callerStripes
    }

    /// Enters as a reader; pass the result to `exit(_:)`.
    @inline(__always)
    func enter(stripe: Int) -> Int {
        while true {
            let current = epoch.load(ordering: .sequentiallyConsistent)
            let index = current &* stripeCount &+ stripe
            counters[index].readers.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if epoch.load(ordering: .sequentiallyConsistent) == current { return index }
            counters[index].readers.wrappingSubtract(1, ordering: .releasing)
        }
    }

    /// Leaves; `token` is what `enter(stripe:)` returned.
    @inline(__always)
    func exit(_ token: Int) {
        counters[token].readers.wrappingSubtract(1, ordering: .releasing)
    }

    /// Waits until every reader that may have seen a pointer unpublished before this call has left.
    /// Callers serialize writers. Must not be called by a reader (it would wait for itself).
    func waitForReaders() {
        let old = epoch.load(ordering: .sequentiallyConsistent)
        epoch.store(1 - old, ordering: .sequentiallyConsistent)
        for stripe in 0..<stripeCount {
            var spins = 0
            while counters[old * stripeCount + stripe].readers.load(ordering: .sequentiallyConsistent) != 0 {
                spins += 1
                if spins < 100 { sched_yield() } else { usleep(50) }
            }
        }
    }
}
