// Conversation counts that wait on the flow records (TrafficAccounts): the tables they end with
// are exactly those of counting every frame's headers in them one by one, as they came — on
// frames made to leave the common path (a TCP stream reopened, the same 4-tuple on two VLANs and
// closed on one, a tunnel's inner headers on a flow of outer ones, a conversation with itself), with records
// split by timeouts, swept out of the table mid-way, or tables too small for every conversation;
// and with new records deferring their rows, as a replay's do, on those frames in many orders.

import TestSupport
import Testing

@testable import FlowMeter
@testable import PacketWire

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct DeferredConversationTests {
    static let ethernetHeader: [UInt8] = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x08, 0x00]

    /// An IPv4 header (no options, checksum left 0) before `payload`.
    static func ipv4(_ source: [UInt8], _ destination: [UInt8], protocol number: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let length = 20 + payload.count
        return [0x45, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 1, 0x40, 0, 64, number, 0, 0]
            + source + destination + payload
    }

    static func udp(_ source: UInt16, _ destination: UInt16) -> [UInt8] {
        [UInt8(source >> 8), UInt8(source & 0xFF), UInt8(destination >> 8), UInt8(destination & 0xFF), 0, 12, 0, 0]
            + [1, 2, 3, 4]
    }

    static func tcp(_ source: UInt16, _ destination: UInt16, flags: UInt8) -> [UInt8] {
        [UInt8(source >> 8), UInt8(source & 0xFF), UInt8(destination >> 8), UInt8(destination & 0xFF)]
            + [0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
    }

    /// A frame of `FlowTimeoutTests.segment` tagged with `vlan`.
    static func tagged(_ frame: [UInt8], vlan: UInt16) -> [UInt8] {
        Array(frame[0..<12]) + [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] + Array(frame[12...])
    }

    /// Frames that take every path of the deferred counting, one a millisecond.
    static let frames: [[UInt8]] = {
        let (syn, synAck, ack, finAck, reset): (UInt8, UInt8, UInt8, UInt8, UInt8) = (0x02, 0x12, 0x10, 0x11, 0x04)
        let segment = FlowTimeoutTests.segment
        let (a, b, c): ([UInt8], [UInt8], [UInt8]) = ([10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3])
        let echoRequest: [UInt8] = [8, 0, 0, 0, 0, 1, 0, 1]
        let echoReply: [UInt8] = [0, 0, 0, 0, 0, 1, 0, 1]
        var frames: [[UInt8]] = [
            // A connection, closed, opened again on its ports, reset, opened from the other side.
            segment(true, syn), segment(false, synAck), segment(true, ack), segment(true, finAck),
            segment(false, finAck), segment(true, ack), segment(true, syn), segment(false, synAck),
            segment(false, reset), segment(false, syn), segment(true, synAck),
            // The same 4-tuple on VLANs 10 and 20: closed on 10, then a pure SYN on 20, whose record
            // saw no FIN.
            tagged(segment(true, syn), vlan: 10), tagged(segment(false, synAck), vlan: 10),
            tagged(segment(true, ack), vlan: 20), tagged(segment(false, ack), vlan: 20),
            tagged(segment(true, finAck), vlan: 10), tagged(segment(false, finAck), vlan: 10),
            tagged(segment(true, syn), vlan: 20), tagged(segment(false, synAck), vlan: 20),
            tagged(segment(true, ack), vlan: 20),
            // A stray reset (a new record's first frame closes its row), then a SYN on its ports.
            ethernetHeader + ipv4(a, b, protocol: 6, tcp(6000, 443, flags: reset)),
            ethernetHeader + ipv4(a, b, protocol: 6, tcp(6000, 443, flags: syn)),
            ethernetHeader + ipv4(b, a, protocol: 6, tcp(443, 6000, flags: synAck)),
        ]
        // An ICMP flow (echo), and an IP-in-IP flow whose first packets carry no sane inner header
        // (counted in the outer header's row only), then one that does (an inner IP and UDP row).
        for payload in [echoRequest, echoReply, echoRequest] {
            frames.append(
                ethernetHeader + ipv4(payload == echoReply ? b : a, payload == echoReply ? a : b, protocol: 1, payload))
        }
        let garbage = [UInt8](repeating: 0, count: 28)
        for inner in [garbage, garbage, ipv4(b, c, protocol: 17, udp(7, 7)), garbage] {
            frames.append(ethernetHeader + ipv4(a, c, protocol: 4, inner))
        }
        // UDP over IPv6 through a type 0 routing header: the UDP conversation's destination is the
        // header's last address, not the IPv6 destination the flow is keyed by.
        let ipv6Ethernet: [UInt8] = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x86, 0xDD]
        let (source, hop, final): ([UInt8], [UInt8], [UInt8]) = (
            [0x20, 1, 0xD, 0xB8] + [UInt8](repeating: 0, count: 11) + [1],
            [0x20, 1, 0xD, 0xB8] + [UInt8](repeating: 0, count: 11) + [2],
            [0x20, 1, 0xD, 0xB8] + [UInt8](repeating: 0, count: 11) + [3]
        )
        let routed = [17, 2, 0, 1, 0, 0, 0, 0] + final + udp(9, 9)
        for _ in 0..<2 {
            frames.append(ipv6Ethernet + [0x60, 0, 0, 0, 0, UInt8(routed.count), 43, 64] + source + hop + routed)
        }
        // A host talking to itself, both ways, and a UDP flow beside it.
        for (source, destination) in [(1, 2), (2, 1), (1, 2)] as [(UInt16, UInt16)] {
            frames.append(ethernetHeader + ipv4(c, c, protocol: 17, udp(source, destination)))
            frames.append(
                ethernetHeader + ipv4(destination == 1 ? b : c, destination == 1 ? c : b, protocol: 17, udp(53, 53)))
        }
        return frames
    }()

    static let start: UInt64 = 1_700_000_000_000_000_000

    static func timestamp(_ index: Int) -> UInt64 { start + UInt64(index) * 1_000_000 }

    /// The tables of counting every header of every frame in them, in order.
    static func countedOneByOne(
        _ frames: [[UInt8]] = frames, maximumRows: Int = .max
    ) -> [ConversationKind: ConversationTable] {
        var tables: [ConversationKind: ConversationTable] = [:]
        for kind in ConversationKind.allCases {
            tables[kind] = ConversationTable()
            tables[kind]!.maximumRows = maximumRows
        }
        for (index, frame) in frames.enumerated() {
            var summary = PacketSummary()
            frame.withUnsafeBytes { PacketParser.parse($0, linkType: .ethernet, into: &summary) }
            for event in summary.events {
                let kind: ConversationKind =
                    switch event.kind {
                    case .ipv4: .ip
                    case .ipv6: .ipv6
                    case .tcp: .tcp
                    case .udp: .udp
                    }
                tables[kind]!.count(
                    source: event.source, sourcePort: event.sourcePort, destination: event.destination,
                    destinationPort: event.destinationPort, wireLength: frame.count, timestamp: timestamp(index),
                    tcpFlags: event.kind == .tcp ? event.tcpFlags : nil)
            }
        }
        return tables
    }

    /// The frames accounted on one workstream's accounts, swept after every `sweepEvery` frames;
    /// new records put off finding their rows if `defersRows`.
    static func accounted(
        _ frames: [[UInt8]] = frames, timeouts: FlowTimeouts = FlowTimeouts(), sweepEvery: Int? = nil,
        maximumRows: Int = .max, defersRows: Bool = false
    ) -> TrafficAccounts {
        var accounts = TrafficAccounts(flowTimeouts: timeouts, maximumConversations: maximumRows)
        accounts.defersConversationRows = defersRows
        var ended: [FlowRecord] = []
        for (index, frame) in frames.enumerated() {
            var summary = PacketSummary()
            frame.withUnsafeBytes { PacketParser.parse($0, linkType: .ethernet, into: &summary) }
            let hash = accounts.prefetchSlot(for: summary)
            accounts.account(
                &summary, flowHash: hash, wireLength: frame.count, capturedLength: frame.count,
                timestamp: timestamp(index), workstream: 0)
            if let sweepEvery, index % sweepEvery == sweepEvery - 1 {
                accounts.sweepFlows(now: timestamp(index), into: &ended)
            }
        }
        accounts.foldConversations()
        return accounts
    }

    @Test func theFramesLeaveTheCommonPath() {
        var summaries: [PacketSummary] = []
        for frame in Self.frames {
            var summary = PacketSummary()
            frame.withUnsafeBytes { PacketParser.parse($0, linkType: .ethernet, into: &summary) }
            summaries.append(summary)
        }
        // One IP-in-IP flow, first of the outer header alone, then with the inner headers too.
        let tunnel = summaries.filter { $0.flow?.ipProtocol == 4 }
        #expect(tunnel.map(\.events.count) == [1, 1, 3, 1])
        #expect(summaries.filter { $0.vlan != nil }.count == 9)
        // The reference itself: four TCP streams on one 4-tuple (the VLAN 20 SYN's among them), two
        // on another.
        let reference = Self.countedOneByOne()
        #expect(reference[.tcp]!.rows.count == 6)
        #expect(reference[.ip]!.rows.contains { $0.addressA == $0.addressB })
        // The routed UDP frames' conversation ends at the routing header's last address.
        let routed = summaries.filter { $0.flow?.source.isIPv6 == true }
        #expect(routed.count == 2 && routed.allSatisfy { $0.events.count == 2 })
        #expect(routed.allSatisfy { $0.events[1].destination != $0.flow!.destination })
    }

    @Test(arguments: [nil, 2, 5] as [Int?])
    func tablesEqualCountingEveryFrameAsItCame(sweepEvery: Int?) {
        let reference = Self.countedOneByOne()
        // Timeouts short enough to split and sweep records mid-way (frames are 1 ms apart).
        for timeouts in [FlowTimeouts(), FlowTimeouts(idle: 0.0025, active: 0.006)] {
            let accounts = Self.accounted(timeouts: timeouts, sweepEvery: timeouts.areSet ? sweepEvery : nil)
            for kind in ConversationKind.allCases {
                let rows = Array(accounts[keyPath: TrafficAccounts.table(kind)].rows)
                #expect(rows == Array(reference[kind]!.rows), "\(kind), \(timeouts)")
            }
        }
    }

    /// New records that put off finding their rows (what a replay does without timeouts, live
    /// export or bounded tables) end with the same tables, rows in the same order, swept or not.
    @Test(arguments: [nil, 3] as [Int?])
    func deferredRowsEqualCountingEveryFrameAsItCame(sweepEvery: Int?) {
        let reference = Self.countedOneByOne()
        let accounts = Self.accounted(sweepEvery: sweepEvery, defersRows: true)
        for kind in ConversationKind.allCases {
            let rows = Array(accounts[keyPath: TrafficAccounts.table(kind)].rows)
            #expect(rows == Array(reference[kind]!.rows), "\(kind)")
        }
    }

    /// The same on the frames in many orders and subsets (a stream reopened before or after a
    /// tunnel's frames, records that never meet anything else, a 4-tuple on two VLANs): deferring
    /// records end with the tables of records linked at their first frames, and without the
    /// VLAN-tagged frames both equal counting one by one. (With them, a shuffled order can
    /// interleave two VLANs' streams of one 4-tuple so that a record's later frames belong to
    /// the other VLAN's newer stream; records count them on their own, as both ways did before.)
    @Test func deferredRowsEqualLinkedRowsInAnyOrder() {
        var ordersThatDeferred = 0
        for order in 0..<200 {
            let seed = UInt64(order)
            var generator = SplitMix(state: seed)
            let frames = Self.frames.shuffled(using: &generator).filter {
                generator.next() % 4 != 0 && (order % 2 == 0 || $0[12] != 0x81)
            }
            let reference = Self.countedOneByOne(frames)
            let linked = Self.accounted(frames)
            let deferring = Self.accounted(frames, defersRows: true)
            if deferring.firstDeferredRecord > 0 { ordersThatDeferred += 1 }
            for kind in ConversationKind.allCases {
                let table = TrafficAccounts.table(kind)
                let rows = Array(deferring[keyPath: table].rows)
                #expect(rows == Array(linked[keyPath: table].rows), "\(kind), seed \(seed)")
                if order % 2 == 1 { #expect(rows == Array(reference[kind]!.rows), "\(kind), seed \(seed)") }
            }
        }
        #expect(ordersThatDeferred > 150)
    }

    @Test func fullTablesCountTheSameFramesUntracked() {
        let reference = Self.countedOneByOne(maximumRows: 2)
        let accounts = Self.accounted(maximumRows: 2)
        for kind in ConversationKind.allCases {
            let table = accounts[keyPath: TrafficAccounts.table(kind)]
            #expect(Array(table.rows) == Array(reference[kind]!.rows), "\(kind)")
            #expect(table.untrackedFrames == reference[kind]!.untrackedFrames, "\(kind)")
        }
        #expect(reference[.tcp]!.untrackedFrames > 0)
    }

    /// Through the engine, on every thread count, with and without timeouts: what the replay
    /// reports is the reference, sorted as tshark sorts.
    @Test(arguments: [1, 2, 3])
    func theReplayReportsTheSameTables(threads: Int) throws {
        let path = "/tmp/netisr-deferred-\(getpid())-\(threads).pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: true))
        for (index, frame) in Self.frames.enumerated() {
            try frame.withUnsafeBytes { try writer.write($0, timestamp: Self.timestamp(index), linkType: .ethernet) }
        }
        try writer.close()
        let reference = Self.countedOneByOne()
        for timeouts in [FlowTimeouts(), FlowTimeouts(idle: 0.0025, active: 0.006)] {
            var configuration = ReplayConfiguration()
            configuration.threads = threads
            configuration.flowTimeouts = timeouts
            let result = try Replay(configuration).run(files: [path])
            for kind in ConversationKind.allCases {
                #expect(
                    result.sortedConversations(kind) == ConversationTable.sortedAsTshark(reference[kind]!.rows),
                    "\(kind), \(timeouts)")
            }
        }
    }
}
