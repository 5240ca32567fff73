// ProducerContext: what one thread writes on the packet path, kept apart from every other
// thread's (the per-producer counters of DESIGN.md, like per-CPU counters in FreeBSD).
//
// Each thread that dispatches (callers and workers alike) gets one context per engine, found
// through a thread-local cache (CNetISRShim) and owned by the engine. Only its thread writes it:
// - `readerSlot`: the thread's ReaderGate entry (0 outside; epoch + 1 inside). Entering is a
//   sequentially consistent store; leaving a release store — no read-modify-write, so leaving
//   does not wait for the ring writes before it to drain. `depth` makes entries nest (a handler
//   running inside a worker's pass may dispatch).
// - counters per protocol × workstream × kind, updated with plain relaxed load + store.
// - scratch space for regrouping a burst by workstream or protocol, one buffer per nesting level
//   (a handler may dispatch while its caller's scratch is in use), allocated on first use.
// Other threads only read (snapshots, the gate's writer).

import Synchronization

final class ProducerContext: @unchecked Sendable {  // unchecked: single writer (its thread), see above
    enum Kind: Int, CaseIterable {
        case dispatched, hybridDispatched, queued, queueDrops, waits, stoppedWhileWaiting, noHandler
    }

    private let padding0 = CacheLinePadding()
    let readerSlot = Atomic<Int>(0)
    var depth = 0
    private let padding1 = CacheLinePadding()
    let outOfRangeDrops = Atomic<Int>(0)
    private let counters: UnsafeMutablePointer<Atomic<Int>>
    private let protocols: Int
    private let workstreams: Int

    init(protocols: Int, workstreams: Int) {
        self.protocols = protocols
        self.workstreams = workstreams
        let count = protocols * workstreams * Kind.allCases.count
        counters = .allocate(capacity: count)
        for index in 0..<count { (counters + index).initialize(to: Atomic(0)) }
    }

    /// Packets one scratch buffer holds; larger runs are regrouped in chunks of this size.
    static let scratchCapacity = 256
    private static let scratchLevels = 4
    private var scratch: [UnsafeMutablePointer<Packet>?] = Array(repeating: nil, count: scratchLevels)
    private var scratchInUse = 0

    /// Runs `body` with an uninitialized buffer of `scratchCapacity` packets, which `body` must
    /// leave uninitialized. Owner thread only. Allocates only the first time a level is used
    /// (and beyond `scratchLevels` nested uses, each time).
    @inline(__always)
    func withScratch<Result>(_ body: (UnsafeMutablePointer<Packet>) -> Result) -> Result {
        let level = scratchInUse
        guard level < Self.scratchLevels else {
            let buffer = UnsafeMutablePointer<Packet>.allocate(capacity: Self.scratchCapacity)
            defer { buffer.deallocate() }
            return body(buffer)
        }
        let buffer: UnsafeMutablePointer<Packet>
        if let existing = scratch[level] {
            buffer = existing
        } else {
            buffer = .allocate(capacity: Self.scratchCapacity)
            scratch[level] = buffer
        }
        scratchInUse += 1
        defer { scratchInUse -= 1 }
        return body(buffer)
    }

    deinit {
        for case let buffer? in scratch { buffer.deallocate() }
        counters.deinitialize(count: protocols * workstreams * Kind.allCases.count)
        counters.deallocate()
    }

    @inline(__always)
    private func index(_ kind: Kind, _ number: Int, _ workstream: Int) -> Int {
        (number * workstreams + workstream) * Kind.allCases.count + kind.rawValue
    }

    /// Adds to a counter. Owner thread only.
    @inline(__always)
    func add(_ kind: Kind, _ number: Int, _ workstream: Int, _ amount: Int) {
        let counter = index(kind, number, workstream)
        counters[counter].store(counters[counter].load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    /// Reads a counter. Any thread.
    func value(_ kind: Kind, _ number: Int, _ workstream: Int) -> Int {
        counters[index(kind, number, workstream)].load(ordering: .relaxed)
    }
}
