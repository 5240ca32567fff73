// WorkstreamQueue: one protocol's presence on one workstream (FreeBSD's `struct netisr_work`):
// its packet ring and its counters.
//
// Counters are split by writer so no line is shared by both sides on the packet path:
// - producer side (dispatching threads, relaxed read-modify-write once per call): offered,
//   dispatched, hybrid-dispatched, queued, queue drops, waits, handled-in-caller;
// - consumer side (the workstream's thread only, plain relaxed load + store): handled.
// Snapshots read them with relaxed loads: each counter is exact, a snapshot of all of them is
// consistent once traffic has stopped.

import Synchronization

final class WorkstreamQueue: Sendable {
    /// The packet queue; `nil` for a protocol registered without one.
    let ring: PacketRing?

    // Producer side.
    let offered = Atomic<Int>(0)
    let dispatched = Atomic<Int>(0)
    let hybridDispatched = Atomic<Int>(0)
    let handledInCaller = Atomic<Int>(0)
    let queued = Atomic<Int>(0)
    let queueDrops = Atomic<Int>(0)
    let queueDropsCleared = Atomic<Int>(0)
    let waits = Atomic<Int>(0)
    let stoppedWhileWaiting = Atomic<Int>(0)
    let watermark = Atomic<Int>(0)
    private let padding = CacheLinePadding()

    // Consumer side.
    let handledByWorker = Atomic<Int>(0)
    let softwareInterrupts = Atomic<Int>(0)

    init(ring: PacketRing?) {
        self.ring = ring
    }

    /// Raises the watermark to `length` if it is higher.
    @inline(__always)
    func noteLength(_ length: Int) {
        var seen = watermark.load(ordering: .relaxed)
        while length > seen {
            let (exchanged, current) = watermark.weakCompareExchange(
                expected: seen, desired: length, ordering: .relaxed)
            if exchanged { return }
            seen = current
        }
    }

    /// Adds `amount` to a counter only this queue's worker writes.
    @inline(__always)
    static func ownerAdd(_ counter: borrowing Atomic<Int>, _ amount: Int) {
        counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }
}
