// ReaderGate: lets a control call (unregister) wait until no thread can still be using a
// protocol registration it has just unpublished, without a lock, a read-modify-write or (on
// Linux 4.14 and later) a fence on the packet path (the role of FreeBSD's `netisr_rmlock`).
//
// Readers are ProducerContexts, one per thread. A reader enters before loading a registration
// pointer and leaves when done with it, by writing its own `readerSlot`.
//
// Protocol:
// - reader: e = epoch; slot = e + 1; if epoch != e, retry; … load pointer, use it …;
//   slot = 0 (release). Nested entries by the same thread only count depth.
// - writer (serialized by the caller): store the new pointer; flip the epoch; make every other
//   thread pass a full barrier; take the list of contexts; wait until no slot holds old-epoch + 1.
// A reader's slot store must not pass its epoch re-check. Where the process may use `membarrier`
// the reader orders the two for the compiler only, and the writer's process-wide barrier does
// the processor's part (as rmlock readers rely on the writer's rendezvous, and RCU on grace
// periods): the barrier runs in each reader between two instructions, so either the slot store
// came before it (and is visible to the writer, which waits for it) or the re-check came after it
// (and sees the flipped epoch, so the reader retries and takes the new pointer). Elsewhere, or
// with NETISR_FENCED_GATE set in the environment, both sides are sequentially consistent: a
// locked store per entry, which made a single-packet direct dispatch ≈ 26 ns instead of ≈ 18
// (BENCHMARKS.md, run 57). A context created after the writer took its list enters after the
// flip. New readers use the new epoch, so the wait cannot starve.

import CNetISRShim
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

final class ReaderGate: Sendable {
    private let epoch = Atomic<Int>(0)
    /// Whether writers make every thread pass a barrier (`membarrier`), so readers need none.
    private let writersFenceReaders =
        getenv("NETISR_FENCED_GATE") == nil && netisr_register_process_barrier() == 1

    /// Enters as a reader on `context`'s slot.
    @inline(__always)
    func enter(_ context: ProducerContext) {
        if context.depth > 0 {
            context.depth += 1
            return
        }
        if writersFenceReaders {
            while true {
                let current = epoch.load(ordering: .relaxed)
                context.readerSlot.store(current + 1, ordering: .relaxed)
                netisr_compiler_barrier()
                // Acquiring: the registration loads that follow stay after the re-check.
                if epoch.load(ordering: .acquiring) == current { break }
            }
        } else {
            while true {
                let current = epoch.load(ordering: .sequentiallyConsistent)
                context.readerSlot.store(current + 1, ordering: .sequentiallyConsistent)
                if epoch.load(ordering: .sequentiallyConsistent) == current { break }
            }
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
        if writersFenceReaders {
            let failure = netisr_process_barrier()
            precondition(failure == 0, "membarrier failed after registering for it (errno \(failure))")
        }
        for context in contexts() {
            var spins = 0
            while context.readerSlot.load(ordering: .sequentiallyConsistent) == old + 1 {
                spins += 1
                if spins < 100 { sched_yield() } else { usleep(50) }
            }
        }
    }
}
