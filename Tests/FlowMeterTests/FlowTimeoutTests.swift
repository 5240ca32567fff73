// Flow timeouts (`--idle-timeout`, `--active-timeout`) and TCP connections reopened on the same
// ports: where a flow's records split on hand-made captures, and that splitting loses and adds
// nothing on a synthesized one, whatever the thread count.

import FlowMeter
import NetISR
import PacketWire
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct FlowTimeoutTests {
    /// One UDP flow between 10.0.0.1:5000 and 10.0.0.2:53: (seconds, from the first host?) per frame.
    static func capture(_ frames: [(seconds: Double, forward: Bool)]) throws -> String {
        let path = "/tmp/netisr-timeouts-\(getpid())-\(frames.count)-\(Int(frames.last?.seconds ?? 0)).pcap"
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: true))
        let forward: [UInt8] = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x08, 0x00] + ReplayFilterTests.udpDatagram
        var reverse = forward
        reverse.replaceSubrange(26..<30, with: forward[30..<34])  // addresses swapped
        reverse.replaceSubrange(30..<34, with: forward[26..<30])
        reverse.replaceSubrange(34..<36, with: forward[36..<38])  // ports swapped
        reverse.replaceSubrange(36..<38, with: forward[34..<36])
        for frame in frames {
            let timestamp = 1_700_000_000_000_000_000 + UInt64(frame.seconds * 1e9)
            try (frame.forward ? forward : reverse).withUnsafeBytes {
                try writer.write($0, timestamp: timestamp, linkType: .ethernet)
            }
        }
        try writer.close()
        return path
    }

    static func replay(_ path: String, threads: Int = 2, idle: Double? = nil, active: Double? = nil) throws
        -> ReplayResult
    {
        var configuration = ReplayConfiguration()
        configuration.threads = threads
        configuration.flowTimeouts = FlowTimeouts(idle: idle, active: active)
        return try Replay(configuration).run(files: [path])
    }

    /// A record as "first-last seconds: source port → destination port, packets forward/reverse".
    static func describe(_ flow: FlowRecord) -> String {
        let base: UInt64 = 1_700_000_000_000_000_000
        let first = Double(flow.firstTimestamp - base) / 1e9
        let last = Double(flow.lastTimestamp - base) / 1e9
        let ended = [FlowExpiry.none: "", .idleTimeout: " idle", .activeTimeout: " active", .endOfFlow: " end"][
            flow.expiry, default: "?"]
        return "\(first)-\(last): \(flow.key.sourcePort)→\(flow.key.destinationPort) "
            + "\(flow.packetsForward)/\(flow.packetsReverse)\(ended)"
    }

    @Test func anIdleFlowStartsANewRecordWithTheDirectionOfItsNextPacket() throws {
        let path = try Self.capture([
            (0, true), (1, false), (2, true), (10, false), (11, true), (11.5, true), (30, true),
        ])
        defer { unlink(path) }
        let whole = try Self.replay(path)
        #expect(whole.flowsInOrder().map(Self.describe) == ["0.0-30.0: 5000→53 5/2"])
        let split = try Self.replay(path, idle: 5)
        #expect(
            split.flowsInOrder().map(Self.describe) == [
                "0.0-2.0: 5000→53 2/1 idle", "10.0-11.5: 53→5000 1/2 idle", "30.0-30.0: 5000→53 1/0",
            ])
        // Exactly the idle time is not more than it.
        let edge = try Self.replay(path, idle: 8)
        #expect(edge.flowsInOrder().count == 2)
        // The conversation tables do not split.
        #expect(split.sortedConversations(.udp) == whole.sortedConversations(.udp))
        #expect(ReplayReport.text(split).contains("3 flow records, timeouts 5 s idle)"))
        let csv = ReplayReport.flowsCSV(split).split(separator: "\n")
        #expect(csv.filter { $0.hasSuffix(",idle-timeout,,") }.count == 2 && csv.last?.hasSuffix(",,,") == true)
        // The JSON records, written as text, are what the engine's JSON renderer makes of them.
        let rendered = JSONValue.array(
            split.flowsInOrder().map { flow in
                .object([
                    ("src", .string(flow.key.source.description)), ("sport", .int(Int(flow.key.sourcePort))),
                    ("dst", .string(flow.key.destination.description)),
                    ("dport", .int(Int(flow.key.destinationPort))), ("proto", .int(Int(flow.key.ipProtocol))),
                    ("vlan", flow.vlan.map { .int(Int($0)) } ?? .null), ("first_ns", .int(Int(flow.firstTimestamp))),
                    ("last_ns", .int(Int(flow.lastTimestamp))), ("packets_fwd", .int(flow.packetsForward)),
                    ("bytes_fwd", .int(flow.bytesForward)), ("packets_rev", .int(flow.packetsReverse)),
                    ("bytes_rev", .int(flow.bytesReverse)), ("tcp_flags", .string("......")),
                    ("workstream", .int(flow.workstream)),
                    ("ended_by", flow.expiry == .idleTimeout ? .string("idle-timeout") : .null),
                    ("icmp_type", .null), ("icmp_code", .null),
                ])
            })
        #expect(ReplayReport.flowsJSON(split) == rendered.rendered + "\n")
        #expect(ReplayReport.json(split).contains("\"flow_timeouts\":{\"idle_ns\":5000000000,\"active_ns\":null}"))
    }

    @Test func aLongFlowGivesARecordPerActivePeriod() throws {
        let path = try Self.capture((0...10).map { (Double($0), $0 % 2 == 0) })
        defer { unlink(path) }
        let split = try Self.replay(path, active: 3)
        #expect(
            split.flowsInOrder().map(Self.describe) == [
                "0.0-3.0: 5000→53 2/2 active", "4.0-7.0: 5000→53 2/2 active", "8.0-10.0: 5000→53 2/1",
            ])
    }

    @Test func timestampsGoingBackwardsEndNoRecord() throws {
        let path = try Self.capture([(100, true), (50, false), (0, true), (100.5, false)])
        defer { unlink(path) }
        let result = try Self.replay(path, idle: 1, active: 1)
        #expect(result.flowsInOrder().map(Self.describe) == ["100.0-100.5: 5000→53 2/2"])
    }

    /// A TCP segment between 10.0.0.1:5000 and 10.0.0.2:80 in an Ethernet frame, flags as given.
    static func segment(forward: Bool, flags: UInt8) -> [UInt8] {
        let (client, server): ([UInt8], [UInt8]) = ([10, 0, 0, 1], [10, 0, 0, 2])
        let (clientPort, serverPort): ([UInt8], [UInt8]) = ([0x13, 0x88], [0x00, 0x50])
        let ethernet: [UInt8] = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x08, 0x00]
        let ip: [UInt8] = [0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0] + (forward ? client + server : server + client)
        let ports = forward ? clientPort + serverPort : serverPort + clientPort
        let tcp: [UInt8] = ports + [0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
        return ethernet + ip + tcp
    }

    /// A connection closed by FINs, the same ports opened again (a retransmitted SYN, a reset, a
    /// SYN-ACK after the reset), then opened from the other side: three records, as tshark's
    /// three TCP streams (three conversation rows), on every thread count, with or without
    /// timeouts that never fire.
    @Test(arguments: [1, 2, 3])
    func aTCPConnectionOpenedAgainOnItsPortsGetsARecordOfItsOwn(threads: Int) throws {
        let (syn, synAck, ack, finAck, reset): (UInt8, UInt8, UInt8, UInt8, UInt8) = (0x02, 0x12, 0x10, 0x11, 0x04)
        let frames: [(Double, Bool, UInt8)] = [
            (0, true, syn), (0.1, false, synAck), (0.2, true, ack), (0.3, true, finAck), (0.4, false, finAck),
            (0.5, true, ack), (1, true, syn), (1.05, true, syn), (1.1, false, synAck), (1.2, false, reset),
            (1.3, false, synAck), (2, false, syn),
        ]
        let path = "/tmp/netisr-reopened-\(getpid())-\(threads).pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: true))
        for (seconds, forward, flags) in frames {
            try Self.segment(forward: forward, flags: flags).withUnsafeBytes {
                try writer.write($0, timestamp: 1_700_000_000_000_000_000 + UInt64(seconds * 1e9), linkType: .ethernet)
            }
        }
        try writer.close()
        for timeouts in [(Double?.none, Double?.none), (60, 600)] {
            let result = try Self.replay(path, threads: threads, idle: timeouts.0, active: timeouts.1)
            let flows = result.flowsInOrder()
            #expect(
                flows.map(Self.describe) == [
                    "0.0-0.5: 5000→80 4/2 end", "1.0-1.3: 5000→80 2/3 end", "2.0-2.0: 80→5000 1/0",
                ])
            #expect(
                flows.map(\.tcpFlagsForward) == [0x13, 0x02, 0x02] && flows.map(\.tcpFlagsReverse) == [0x13, 0x16, 0])
            // The conversation table splits the same way: one row per record, A its initiator.
            let rows = result.sortedConversations(.tcp).sorted { $0.firstTimestamp < $1.firstTimestamp }
            #expect(rows.map(\.portA) == flows.map(\.key.sourcePort))
            #expect(rows.map(\.framesAToB) == flows.map(\.packetsForward))
            #expect(rows.map(\.framesBToA) == flows.map(\.packetsReverse))
        }
    }

    /// Every packet and byte of a flow is in exactly one of its records, and the records are the
    /// same for every thread count.
    @Test func splittingConservesEveryPacketAndByteOnEveryThreadCount() throws {
        let path = try SynthCapture.write(packets: 6_000, flows: 500, seed: 61, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let whole = try Self.replay(path)
        func totals(_ result: ReplayResult) -> [String: [Int]] {
            result.flowsInOrder().reduce(into: [:]) { sums, flow in
                let key = "\(flow.key.canonical) \(flow.vlan ?? 0)"
                let counts = [flow.packets, flow.bytes]
                sums[key] = zip(sums[key] ?? [0, 0], counts).map { $0 + $1 }
            }
        }
        var fingerprints: Set<[String]> = []
        for threads in [1, 2, 3] {
            let split = try Self.replay(path, threads: threads, idle: 0.002, active: 0.02)
            #expect(split.flowCount > whole.flowCount + 100)
            #expect(totals(split) == totals(whole))
            #expect(split.flows.allSatisfy { $0.lastTimestamp - $0.firstTimestamp <= 20_000_000 })
            // Every ICMP record, the later parts of a split flow too, has its first message's type.
            let icmp = { (result: ReplayResult) in result.flows.filter { [1, 58].contains($0.key.ipProtocol) } }
            #expect(icmp(split).count > icmp(whole).count && icmp(split).allSatisfy { $0.icmpTypeCode != nil })
            fingerprints.insert(split.flowsInOrder().map { "\($0.key) \(Self.describe($0)) \($0.bytes)" })
        }
        #expect(fingerprints.count == 1)
    }
}
