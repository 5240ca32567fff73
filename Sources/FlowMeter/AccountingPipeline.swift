// AccountingPipeline: how an ip or ip6 handler call accounts its burst.
//
// Accounting one frame touches, at random, a flow-table slot, the flow's record and one or two
// conversation rows: with 100k flows these are cache misses, and done one frame at a time each
// waits for the last. The pipeline overlaps them, as bulk hash lookups do: while frame n is
// parsed and its slot prefetched, frame n-3's record, frame n-6's conversation rows are
// prefetched and frame n-9 is accounted (stages a frame apart left each prefetch one parse's
// time to arrive, too little: three apart, 650 → 620 ms CPU, 15 interleaved pairs; four apart
// was no better). Ahead of all of them, packet n+4's headers are
// prefetched: on a worker the first touch of a packet's bytes is a miss too (the reader's core
// wrote them), and it was most of the parse's time (1M packets, 100k flows: 556 → 509 ms wall,
// 1020 → 950 ms CPU, 21 interleaved pairs; distance 8 was no better). Frames are accounted in
// burst order, each exactly as `TrafficAccounts.account` would alone; the prefetches are hints
// and change no result.
//
// Runs on the handler's workstream only (the accounts it is given are that workstream's).

import CNetISRShim
import NetISR
import PacketWire

enum AccountingPipeline {
    /// A frame between the stages: its parse and what accounting needs of the packet.
    private struct Frame {
        var summary = PacketSummary()
        var flowHash: UInt64 = 0
        var wireLength = 0
        var capturedLength = 0
        var timestamp: UInt64 = 0
    }

    /// How many frames each stage trails the one before.
    private static let stageLag = 3

    /// Frames in flight: room for the three stages' lags (a power of two, for the ring's mask).
    private static let depth = 16

    /// How far ahead of the parse a packet's headers are prefetched.
    private static let bytesAhead = 4

    /// Starts loading a packet's first two cache lines: its link, network and transport headers.
    @inline(__always)
    private static func prefetchHeaders(of packet: borrowing Packet) {
        guard let start = packet.bytes.baseAddress, packet.bytes.count > 0 else { return }
        netisr_prefetch(start)
        netisr_prefetch(start + min(63, packet.bytes.count - 1))
    }

    /// Parses and accounts every packet of `burst` into `accounts`, recording queueing delays in
    /// `delays` when measured (`now`: the handler call's start).
    static func run(
        _ burst: inout PacketBurst, into accounts: UnsafeMutablePointer<TrafficAccounts>, workstream: Int,
        protocolIndex: Int, delays: DelayHistogram?, now: UInt64
    ) {
        withUnsafeTemporaryAllocation(of: Frame.self, capacity: depth) { frames in
            frames.initialize(repeating: Frame())
            defer { frames.deinitialize() }
            let frame = frames.baseAddress!
            let mask = depth - 1
            var parsed = 0
            var recordsLoaded = 0
            var rowsLoaded = 0
            var accounted = 0
            while true {
                var more = false
                burst.peek(ahead: bytesAhead) { prefetchHeaders(of: $0) }
                if let packet = burst.next() {
                    more = true
                    let current = frame + (parsed & mask)
                    delays?.record(
                        workstream: workstream, protocol: protocolIndex, captured: packet.timestamp, now: now)
                    PacketParser.parse(
                        packet.bytes, linkType: ReplayProtocol.linkType(of: packet), into: &current.pointee.summary)
                    current.pointee.wireLength = Int(packet.wireLength)
                    current.pointee.capturedLength = packet.bytes.count
                    current.pointee.timestamp = packet.timestamp
                    current.pointee.flowHash = accounts.pointee.prefetchSlot(for: current.pointee.summary)
                    parsed += 1
                }
                // Each stage trails the one before by `stageLag` frames while packets come, then
                // catches up.
                let lag = more ? stageLag : 0
                while recordsLoaded < parsed - lag {
                    let next = frame + (recordsLoaded & mask)
                    accounts.pointee.prefetchRecord(for: next.pointee.summary, hash: next.pointee.flowHash)
                    recordsLoaded += 1
                }
                while rowsLoaded < recordsLoaded - lag {
                    let next = frame + (rowsLoaded & mask)
                    accounts.pointee.prefetchRows(for: &next.pointee.summary, hash: next.pointee.flowHash)
                    rowsLoaded += 1
                }
                while accounted < rowsLoaded - lag {
                    let next = frame + (accounted & mask)
                    accounts.pointee.account(
                        &next.pointee.summary, flowHash: next.pointee.flowHash, wireLength: next.pointee.wireLength,
                        capturedLength: next.pointee.capturedLength, timestamp: next.pointee.timestamp,
                        workstream: workstream)
                    accounted += 1
                }
                if !more { break }
            }
        }
    }
}
