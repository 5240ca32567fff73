// ReaderGate: lets a control call (unregister, stop) wait until no thread can still be using a
// protocol registration it has just unpublished, without a lock or a read-modify-write on the
// packet path (the role of FreeBSD's `netisr_rmlock`).
//
// Readers are ProducerContexts, one per thread. A reader enters before loading a registration
// pointer and leaves when done with it, by writing its own `readerSlot`.
//
// Protocol (sequentially consistent unless noted):
// - reader: e = epoch; slot = e + 1; if epoch != e, retry; … load pointer, use it …;
//   slot = 0 (release). Nested entries by the same thread only count depth.
// - writer (serialized by the caller): store the new pointer; flip the epoch; take the list of
//   contexts; wait until no slot holds old-epoch + 1.
// A reader whose re-check saw the new epoch sees the new pointer; one whose re-check saw the old
// epoch wrote its slot before the flip, so the writer sees and waits for it. A context created
// after the writer took its list enters after the flip. New readers use the new epoch, so the
// wait cannot starve.

import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

final class ReaderGate: Sendable {
    private let epoch = Atomic<Int>(0)

    /// Enters as a reader on `context`'s slot.
    @inline(__always)
    func enter(_ context: ProducerContext) {
        if context.depth > 0 {
            context.depth += 1
            return
        }
        while true {
            let current = epoch.load(ordering: .sequentiallyConsistent)
            context.readerSlot.store(current + 1, ordering: .sequentiallyConsistent)
            if epoch.load(ordering: .sequentiallyConsistent) == current { break }
        }
        context.depth = 1
    }

    /// Leaves.
    @inline(__always)
    func exit(_ context: ProducerContext) {
        context.depth -= 1
        if context.depth == 0 {
            context.readerSlot.store(0, ordering: .releasing)
        }
    }

    /// Waits until every reader that may have seen a pointer unpublished before this call has left.
    /// Callers serialize writers and must not be readers themselves (they would wait for themselves).
    func waitForReaders(_ contexts: () -> [ProducerContext]) {
        let old = epoch.load(ordering: .sequentiallyConsistent)
        epoch.store(1 - old, ordering: .sequentiallyConsistent)
        for context in contexts() {
            var spins = 0
            while context.readerSlot.load(ordering: .sequentiallyConsistent) == old + 1 {
                spins += 1
                if spins < 100 { sched_yield() } else { usleep(50) }
            }
        }
    }
}
