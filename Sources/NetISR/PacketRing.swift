// PacketRing: the bounded queue between dispatching threads and one workstream, for one
// protocol (FreeBSD's per-workstream `nw_queue`).
//
// Design: a multi-producer, single-consumer ring in the style of DPDK's `rte_ring`, moving
// packets in bursts.
// - Producers reserve a run of slots with one compare-exchange on `producerHead`, move their
//   packets in, then publish by advancing `producerTail` in reservation order (a later producer
//   waits for earlier ones to publish: spin, then yield). The compare-exchange is the only
//   read-modify-write, and it comes before the slot writes, so the writes drain in the
//   background instead of stalling the producer.
// - The one consumer (the workstream's thread, or the control path while that thread is known
//   not to run) reads `producerTail`, hands the contiguous run of slots to the handler in place,
//   then advances `consumerHead`.
// - The limit is separate from the capacity so it can change at run time without moving
//   packets: capacity is the maximum queue limit rounded up to a power of two, and a run only
//   fits if it keeps the length within the current limit.
// - A lossless producer that finds no room after a short spin sleeps on `roomSignal` until the
//   consumer frees slots (`waitForRoom`), rather than polling with timed sleeps: on a virtual
//   machine a sleep of 20 µs lasts 50–200 µs, in which the consumer empties the ring and falls
//   asleep itself, so every refill cost two wake-ups (BENCHMARKS.md, run 57). The producer counts
//   itself in `roomWaiters`, then re-checks for room under the signal's mutex; the consumer stores
//   its head, then loads `roomWaiters` and broadcasts if it is not zero. Both sides' accesses
//   are sequentially consistent, so at least one sees the other: no lost wake-up.
// Orderings: the tail store (release) pairs with the consumer's tail load (acquire), publishing
// the slots; the consumer's head store pairs with the producers' head load (acquire), so a slot
// is reused only after its packet was moved out. Producer-side fields, the tail and the
// consumer's head sit on separate cache lines.
//
// Cost noted for later: capacity follows the maximum limit (10,240 → 16,384 slots × 48 bytes =
// 768 KiB of address space per queue, resident as it wraps). Revisit with growable rings if
// many protocols × workstreams make that matter.

import CNetISRShim
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

final class PacketRing: @unchecked Sendable {  // unchecked: slots are guarded by the head/tail protocol above
    private let storage: UnsafeMutablePointer<Packet>
    let capacity: Int
    private let mask: Int
    private let padding0 = CacheLinePadding()

    // Producers' line: written by every producer.
    private let producerHead = Atomic<Int>(0)
    private let cachedConsumerHead = Atomic<Int>(0)
    private let limitValue: Atomic<Int>
    private let padding1 = CacheLinePadding()

    // Publication line: written by producers, read by the consumer each burst.
    private let producerTail = Atomic<Int>(0)
    private let padding2 = CacheLinePadding()

    // Consumer's line: written by the consumer, read by producers when their cached copy says
    // full; `roomWaiters` is written only by producers about to sleep for room.
    private let consumerHead = Atomic<Int>(0)
    private let roomWaiters = Atomic<Int>(0)
    private let padding3 = CacheLinePadding()
    private let roomSignal = WakeupSignal()

    init(capacityAtLeast minimum: Int, limit: Int) {
        var capacity = 1
        while capacity < minimum { capacity <<= 1 }
        self.capacity = capacity
        self.mask = capacity - 1
        self.storage = .allocate(capacity: capacity)
        self.limitValue = Atomic(min(limit, capacity))
    }

    deinit {
        discardAll()
        storage.deallocate()
    }

    /// The queue limit: most packets that may wait at once.
    var limit: Int {
        get { limitValue.load(ordering: .relaxed) }
        set { limitValue.store(min(newValue, capacity), ordering: .relaxed) }
    }

    /// Packets published and not yet consumed.
    var count: Int {
        let head = consumerHead.load(ordering: .relaxed)
        return max(0, producerTail.load(ordering: .acquiring) - head)
    }

    /// Reserves up to `wanted` slots, as many as the limit allows.
    ///
    /// The reservation is a sequentially consistent compare-exchange: a worker that announces it
    /// is going to sleep and then checks `hasReservations` sees it, and this producer, loading the
    /// worker's `asleep` flag after reserving, sees the announcement (see Workstream).
    ///
    /// - Returns: the first reserved position, how many were reserved (0 when full), and the
    ///   queue length including them as this producer sees it (may overestimate).
    @inline(__always)
    func reserve(_ wanted: Int) -> (start: Int, count: Int, length: Int) {
        var head = producerHead.load(ordering: .relaxed)
        while true {
            let limit = limitValue.load(ordering: .relaxed)
            var consumed = cachedConsumerHead.load(ordering: .acquiring)
            var free = limit - (head - consumed)
            if free < wanted {
                consumed = consumerHead.load(ordering: .acquiring)
                cachedConsumerHead.store(consumed, ordering: .releasing)
                free = limit - (head - consumed)
            }
            let count = min(wanted, free)
            if count <= 0 { return (head, 0, head - consumed) }
            let (exchanged, original) = producerHead.weakCompareExchange(
                expected: head, desired: head + count, successOrdering: .sequentiallyConsistent,
                failureOrdering: .relaxed)
            if exchanged { return (head, count, head + count - consumed) }
            head = original
        }
    }

    /// Moves `count` packets from `source` into reserved slots starting at `start`.
    @inline(__always)
    func write(at start: Int, from source: UnsafeMutablePointer<Packet>, count: Int) {
        let first = start & mask
        let firstRun = min(count, capacity - first)
        (storage + first).moveInitialize(from: source, count: firstRun)
        if firstRun < count {
            storage.moveInitialize(from: source + firstRun, count: count - firstRun)
        }
    }

    /// Publishes written slots to the consumer, after every earlier reservation is published.
    @inline(__always)
    func publish(at start: Int, count: Int) {
        var spins = 0
        while producerTail.load(ordering: .acquiring) != start {
            spins += 1
            if spins < 64 { netisr_cpu_relax() } else { sched_yield() }
        }
        producerTail.store(start + count, ordering: .releasing)
    }

    /// Whether any slot is reserved or published and not yet consumed (sequentially consistent).
    var hasReservations: Bool {
        producerHead.load(ordering: .sequentiallyConsistent) != consumerHead.load(ordering: .sequentiallyConsistent)
    }

    /// The next contiguous run of up to `maximum` published packets, left in place for the handler.
    /// Consumer only; follow with `advance(by:)` once the packets have been moved out.
    func peek(maximum: Int) -> (base: UnsafeMutablePointer<Packet>, count: Int, length: Int) {
        let head = consumerHead.load(ordering: .relaxed)
        let available = producerTail.load(ordering: .acquiring) - head
        let index = head & mask
        let run = min(available, maximum, capacity - index)
        return (storage + index, max(0, run), available)
    }

    /// Frees `count` slots whose packets have been moved out or deinitialized, and wakes producers
    /// waiting for room. Consumer only.
    func advance(by count: Int) {
        let head = consumerHead.load(ordering: .relaxed)
        consumerHead.store(head + count, ordering: .sequentiallyConsistent)
        if roomWaiters.load(ordering: .sequentiallyConsistent) != 0 { roomSignal.broadcast() }
    }

    /// Whether a slot is free within the limit (as `reserve` would see it, sequentially consistent).
    private var hasRoom: Bool {
        let used =
            producerHead.load(ordering: .sequentiallyConsistent) - consumerHead.load(ordering: .sequentiallyConsistent)
        return used < limitValue.load(ordering: .relaxed)
    }

    /// Sleeps until the consumer frees a slot, `wakeRoomWaiters` is called, or `nanoseconds` pass
    /// (a safety net). Returns at once if there is room or `stillWaiting()` is false; both are
    /// evaluated under the signal's mutex, so a change published before `wakeRoomWaiters` (the
    /// engine stopping, the protocol going) is never missed. Producer side; the caller reserves
    /// again.
    func waitForRoom(atMost nanoseconds: Int, while stillWaiting: () -> Bool) {
        roomWaiters.add(1, ordering: .sequentiallyConsistent)
        roomSignal.wait(atMost: nanoseconds) { !hasRoom && stillWaiting() }
        roomWaiters.subtract(1, ordering: .relaxed)
    }

    /// Wakes every producer waiting for room (when the engine stops or the protocol goes).
    func wakeRoomWaiters() { roomSignal.broadcast() }

    /// Releases every published packet. Consumer only.
    @discardableResult
    func discardAll() -> Int {
        var total = 0
        while true {
            let run = peek(maximum: capacity)
            if run.count == 0 { return total }
            run.base.deinitialize(count: run.count)
            advance(by: run.count)
            total += run.count
        }
    }
}

/// 128 bytes of nothing: keeps the fields around it on different cache lines (and out of the
/// adjacent-line prefetcher's pair).
struct CacheLinePadding {
    private var words: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
}
