// Flow timeouts (`--idle-timeout`, `--active-timeout`): where a flow's records split on a
// hand-made capture, and that splitting loses and adds nothing on a synthesized one, whatever the
// thread count.

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
        let ended = [FlowExpiry.none: "", .idleTimeout: " idle", .activeTimeout: " active"][flow.expiry, default: "?"]
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
        #expect(csv.filter { $0.hasSuffix(",idle-timeout") }.count == 2 && csv.last?.hasSuffix(",") == true)
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
            fingerprints.insert(split.flowsInOrder().map { "\($0.key) \(Self.describe($0)) \($0.bytes)" })
        }
        #expect(fingerprints.count == 1)
    }
}
