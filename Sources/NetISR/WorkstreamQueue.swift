// WorkstreamQueue: one protocol's presence on one workstream (FreeBSD's `struct netisr_work`):
// its packet ring and the counters its worker writes. What dispatching threads count lives in
// their ProducerContexts, so no counter line is shared between threads on the packet path.
// The watermark is the exception: raised with a compare-exchange, only when a producer sees a
// length above it.

import Synchronization

final class WorkstreamQueue: Sendable {
    /// The packet queue; `nil` for a protocol registered without one. The packet path uses
    /// `withRing`, which does not touch its reference count (shared by producers and the worker,
    /// a retain per burst would bounce the count's cache line between them).
    let ring: PacketRing?
    private let unmanagedRing: Unmanaged<PacketRing>?
    /// Highest queue length seen (`nw_watermark`).
    let watermark = Atomic<Int>(0)
    private let padding = CacheLinePadding()

    // Written by the workstream's thread only.
    let handledByWorker = Atomic<Int>(0)
    let softwareInterrupts = Atomic<Int>(0)

    init(ring: PacketRing?) {
        self.ring = ring
        self.unmanagedRing = ring.map { Unmanaged.passUnretained($0) }
    }

    /// Runs `body` with the ring, not retained; `nil` without a ring.
    @inline(__always)
    func withRing<Result>(_ body: (PacketRing) -> Result) -> Result? {
        guard let unmanagedRing else { return nil }
        return unmanagedRing._withUnsafeGuaranteedRef(body)
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

    /// Adds `amount` to a counter only one thread writes.
    @inline(__always)
    static func ownerAdd(_ counter: borrowing Atomic<Int>, _ amount: Int) {
        counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }
}
