// The replay's own behaviour: the same result for every thread count, dispatch and ordering
// policy in lossless mode; equality with tshark on synthesized traffic (references made by
// ../shared/oracle/oracle.sh, committed in Fixtures/); damaged and missing files; drop-tail; the
// drops capturing tools recorded in the files.

import NetISR
import PacketWire
import Synchronization
import TestSupport
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

/// A replay run on a thread of its own and waited for at most a minute. Not a timing target: a
/// replay whose reader waits for itself never ends, and its test must then fail, not hang (the
/// stuck thread is left behind).
enum BoundedReplay {
    /// nil if the replay did not end within the minute; otherwise its result (nil if it threw).
    static func run(_ configuration: ReplayConfiguration, files: [String]) -> ReplayResult?? {
        let outcome = Mutex<ReplayResult??>(nil)
        let thread = TestThread {
            let result = try? Replay(configuration).run(files: files)
            outcome.withLock { $0 = .some(result) }
        }
        guard eventually(seconds: 60, { outcome.withLock { $0 != nil } }) else { return nil }
        thread.join()
        return outcome.withLock { $0 }
    }
}

enum SynthCapture {
    /// Files written so far: each call gets its own file, as tests run in parallel and some use
    /// the same seed.
    private static let written = Atomic<Int>(0)

    /// Writes the synthesized capture the committed references were made from.
    static func write(packets: Int, flows: Int, seed: UInt64, format: CaptureWriter.Format) throws -> String {
        let serial = written.add(1, ordering: .relaxed).newValue
        let path =
            "/tmp/netisr-test-\(getpid())-\(serial)-\(seed).\(format == .pcap(nanosecond: false) ? "pcap" : "pcapng")"
        let writer = try CaptureWriter(path: path, format: format)
        var synthesizer = TrafficSynthesizer(.init(packets: packets, flows: flows, seed: seed))
        try synthesizer.generate { frame, time in try writer.write(frame, timestamp: time, linkType: .ethernet) }
        try writer.close()
        return path
    }

    static var fixtures: String {
        var path = #filePath
        if let slash = path.lastIndex(of: "/") { path = String(path[..<slash]) }
        return path + "/Fixtures"
    }
}

@Suite struct ReplayTests {
    func run(
        _ files: [String], threads: Int = 2, dispatch: DispatchPolicy = .deferred, ordering: String = "flow",
        qlimit: Int = 0, drop: Bool = false
    ) throws -> ReplayResult {
        var configuration = ReplayConfiguration()
        configuration.threads = threads
        configuration.dispatch = dispatch
        configuration.ordering = ordering
        configuration.queueLimit = qlimit
        configuration.dropWhenFull = drop
        return try Replay(configuration).run(files: files)
    }

    /// Everything but the workstream each flow happened to be handled on.
    func fingerprint(_ result: ReplayResult) -> String {
        var text = "\(result.frames) \(result.wireBytes) \(result.capturedBytes)\n"
        for row in result.layers { text += "\(row.network) \(row.transport) \(row.frames)\n" }
        for kind in ConversationKind.allCases { text += ReplayReport.conversationsCSV(result, kind) }
        for flow in result.flowsInOrder() {
            text += "\(flow.key) \(flow.vlan ?? 0) \(flow.firstTimestamp) \(flow.lastTimestamp) \(flow.packetsForward) "
            text += "\(flow.bytesForward) \(flow.packetsReverse) \(flow.bytesReverse) \(flow.tcpFlags)\n"
        }
        return text
    }

    @Test func sameResultForEveryThreadCountDispatchAndOrderingPolicy() throws {
        let path = try SynthCapture.write(packets: 6_000, flows: 700, seed: 21, format: .pcapng(nanosecond: true))
        defer { unlink(path) }
        let baseline = fingerprint(try run([path], threads: 1))
        #expect(baseline.count > 1_000)
        for threads in [1, 2, 3] {
            for dispatch in DispatchPolicy.allCases {
                for ordering in ["flow", "source", "cpu"] {
                    // A tiny queue makes the lossless path wait often.
                    let result = try run([path], threads: threads, dispatch: dispatch, ordering: ordering, qlimit: 8)
                    #expect(fingerprint(result) == baseline, "threads \(threads) \(dispatch) \(ordering)")
                    let totals = result.snapshot.totals
                    #expect(totals.queueDrops == 0)
                    #expect(totals.offered == totals.accountedFor)
                }
            }
        }
    }

    @Test(arguments: [
        (UInt64(5), CaptureWriter.Format.pcap(nanosecond: false), 20_000, 2_000),
        (6, .pcapng(nanosecond: false), 5_000, 600),
    ])
    func synthesizedTrafficMatchesTshark(seed: UInt64, format: CaptureWriter.Format, packets: Int, flows: Int) throws {
        let path = try SynthCapture.write(packets: packets, flows: flows, seed: seed, format: format)
        defer { unlink(path) }
        let result = try run([path])
        let directory = "\(SynthCapture.fixtures)/synth-seed\(seed)"
        for kind in ConversationKind.allCases {
            let expected = try #require(SharedFixtures.read("\(directory)/conv_\(kind.rawValue).csv"))
            #expect(ReplayReport.conversationsCSV(result, kind) == expected, "conv_\(kind.rawValue)")
        }
        var layers = "l3,l4,frames\n"
        for row in result.layers.sorted(by: { ($0.network, $0.transport) < ($1.network, $1.transport) }) {
            layers += "\(row.network.rawValue),\(row.transport.rawValue),\(row.frames)\n"
        }
        #expect(layers == SharedFixtures.read("\(directory)/l3l4.csv"))
        let summary = try #require(SharedFixtures.read("\(directory)/summary.tsv"))
        #expect(summary.contains("frames\t\(result.frames)\n") && summary.contains("wire_bytes\t\(result.wireBytes)\n"))
    }

    /// Tables past the size where their storage moves into mappings of their own (30k flows,
    /// one workstream; then two): every flow's counts equal an independent count of the capture.
    /// A bound on the conversation tables keeps the first rows whole and counts the frames of the
    /// conversations it had no room for; nothing else changes.
    @Test func fullConversationTablesCountWhatTheyCannotTable() throws {
        let path = try SynthCapture.write(packets: 4_000, flows: 400, seed: 83, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let whole = try run([path], threads: 2)
        var configuration = ReplayConfiguration()
        configuration.threads = 2
        configuration.maximumConversations = 40
        let bounded = try Replay(configuration).run(files: [path])
        #expect(bounded.frames == whole.frames && bounded.flowCount == whole.flowCount)
        for kind in ConversationKind.allCases {
            let rows = bounded.sortedConversations(kind)
            let all = whole.sortedConversations(kind)
            #expect(rows.count <= 40 && all.count > 40)
            #expect(rows.allSatisfy { all.contains($0) })
            let untracked = bounded.untrackedConversationFrames[kind, default: 0]
            #expect(untracked > 0)
            #expect(rows.reduce(0) { $0 + $1.frames } + untracked == all.reduce(0) { $0 + $1.frames })
        }
        #expect(ReplayReport.text(bounded).contains("Frames of conversations the full tables had no row for: ip "))
        #expect(whole.untrackedConversationFrames.isEmpty)
    }

    @Test func largeTablesKeepEveryFlow() throws {
        let path = try SynthCapture.write(packets: 60_000, flows: 30_000, seed: 81, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        struct Counts: Equatable {
            var packets = 0
            var bytes = 0
            /// The first packet's ICMP type and code.
            var icmpTypeCode: UInt16?
        }
        var expected: [String: Counts] = [:]
        let reader = try CaptureReader(path: path)
        while try reader.read(
            maximum: 256,
            { record in
                let summary = PacketParser.parse(record.bytes, linkType: record.linkType)
                guard let flow = summary.flow else { return }
                let key = "\(flow.canonical) \(summary.vlan ?? 0)"
                if expected[key] == nil { expected[key] = Counts(icmpTypeCode: summary.icmpTypeCode) }
                expected["\(flow.canonical) \(summary.vlan ?? 0)", default: Counts()].packets += 1
                expected["\(flow.canonical) \(summary.vlan ?? 0)", default: Counts()].bytes += record.originalLength
            }) > 0
        {}
        #expect(expected.count > 20_000)
        #expect(expected.values.filter { $0.icmpTypeCode == 0x0800 }.count > 100)
        let single = try run([path], threads: 1)
        var counted: [String: Counts] = [:]
        for flow in single.flowsInOrder() {
            counted["\(flow.key.canonical) \(flow.vlan ?? 0)"] = Counts(
                packets: flow.packets, bytes: flow.bytes, icmpTypeCode: flow.icmpTypeCode)
        }
        #expect(single.flowCount == expected.count)
        #expect(counted == expected)
        #expect(fingerprint(try run([path], threads: 2)) == fingerprint(single))
    }

    @Test func damagedAndMissingFilesAreReportedAndTheRestIsProcessed() throws {
        let good = try SynthCapture.write(packets: 1_000, flows: 50, seed: 31, format: .pcap(nanosecond: false))
        defer { unlink(good) }
        // A copy cut in the middle of a record.
        let bytes = try #require(SharedFixtures.bytes(good))
        let damaged = good + ".cut.pcap"
        defer { unlink(damaged) }
        let file = fopen(damaged, "w")
        fwrite(bytes, 1, bytes.count / 2, file)
        fclose(file)
        let result = try run(["/nonexistent/capture.pcap", damaged, good])
        #expect(result.errors.count == 2)
        #expect(result.errors[0].error.code == .io)
        #expect(result.errors[1].error.code == .truncatedRecord && result.errors[1].error.offset > 24)
        #expect(result.errors[1].description.contains(damaged))
        let whole = try run([good])
        #expect(result.frames > whole.frames && result.frames < 2 * whole.frames)
        #expect(ReplayReport.json(result).contains("\"errors\":[{\"file\":\"/nonexistent/capture.pcap\""))
    }

    /// What the files' own statistics say their capturing tools dropped: summed over the files
    /// that say it, shown in the report and the JSON; null when none does.
    @Test func dropsTheCapturingToolsReportedAreShown() throws {
        let paths = (0..<3).map { "/tmp/netisr-isb-\(getpid())-\($0).pcapng" }
        defer { for path in paths { unlink(path) } }
        let frame = [UInt8](repeating: 0, count: 60)
        for (index, path) in paths.enumerated() {
            let writer = try CaptureWriter(path: path, format: .pcapng(nanosecond: true))
            try frame.withUnsafeBytes { try writer.write($0, timestamp: 1, linkType: .ethernet) }
            if index < 2 {
                try writer.writeStatistics(received: 9, dropped: UInt64(4 + index), delivered: 1, timestamp: 2)
            }
            try writer.close()
        }
        let result = try run(paths)
        #expect(result.frames == 3 && result.droppedWhileCapturing == 9)
        #expect(ReplayReport.text(result).contains("Capture drops: 9 frames, by the capturing tool's own statistics"))
        #expect(ReplayReport.json(result).contains("\"dropped_while_capturing\":9,"))
        let silent = try run([paths[2]])
        #expect(silent.droppedWhileCapturing == nil && !ReplayReport.text(silent).contains("Capture drops"))
        #expect(ReplayReport.json(silent).contains("\"dropped_while_capturing\":null,"))
    }

    @Test func dropTailLosesPacketsButAccountsForEveryOne() throws {
        let path = try SynthCapture.write(packets: 20_000, flows: 100, seed: 41, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let result = try run([path], threads: 1, qlimit: 1, drop: true)
        let totals = result.snapshot.totals
        #expect(totals.offered == totals.accountedFor)
        // Every frame was offered to ether; those forwarded and dropped are missing from the tables.
        let forwardedDrops = totals.queueDrops
        #expect(result.frames + forwardedDrops == 20_000)
        #expect(result.drops.first { $0.reason == "queue-full" }?.packets == forwardedDrops)
    }

    /// Frames go to workstreams by their outermost addresses, so the inner conversation of an
    /// IP-in-IP tunnel whose endpoints vary is counted on several workstreams; merged, it must be
    /// one row again, as with one thread.
    @Test func tunnelConversationSplitAcrossWorkstreamsMergesIntoOneRow() throws {
        let path = "/tmp/netisr-test-\(getpid())-tunnel.pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: false))
        let frames = 64
        for index in 0..<frames {
            let forward = index % 3 != 2
            let (innerSource, innerDestination): (UInt8, UInt8) = forward ? (1, 2) : (2, 1)
            var frame: [UInt8] = [
                0x45, 0, 0, 68, 0, 0, 0, 0, 64, 4, 0, 0, 10, 0, UInt8(index), 1, 10, 0, UInt8(index), 2,
            ]
            frame += [
                0x45, 0, 0, 48, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 0, innerSource, 192, 168, 0, innerDestination,
            ]
            frame += forward ? [0x03, 0xE8, 0x07, 0xD0] : [0x07, 0xD0, 0x03, 0xE8]
            frame += [0, 28, 0, 0] + [UInt8](repeating: 0xAB, count: 20)
            try frame.withUnsafeBytes {
                try writer.write($0, timestamp: 1_700_000_000_000_000_000 + UInt64(index) * 1_000, linkType: .raw)
            }
        }
        try writer.close()
        let single = try run([path], threads: 1)
        let inner = single.conversations[.ip, default: []].filter { $0.addressA == IPAddress("192.168.0.1") }
        #expect(inner.count == 1 && inner.first?.frames == frames)
        for threads in [2, 4] {
            let result = try run([path], threads: threads)
            let ipWorkstreams = Set(result.snapshot.work.filter { $0.name == "ip" && $0.handled > 0 }.map(\.workstream))
            #expect(ipWorkstreams.count > 1, "the tunnel's frames were not spread: nothing was split")
            for kind in ConversationKind.allCases {
                #expect(
                    ReplayReport.conversationsCSV(result, kind) == ReplayReport.conversationsCSV(single, kind),
                    "conv_\(kind.rawValue) with \(threads) threads")
            }
        }
    }

    /// Records of 200 kB in an arena of two chunks: a batch of them (64 frames, 12.8 MB) spans
    /// both chunks, and the reader must never wait for a chunk whose packets it still holds
    /// itself (this hung before the batch was kept to one chunk).
    @Test func largeRecordsNeverStallTheReader() throws {
        let path = "/tmp/netisr-test-\(getpid())-large.pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: false))
        let length = 200_000
        // Round the arena twice.
        let frames = 2 * 2 * PacketArena.chunkSize / length + 1
        for index in 0..<frames {
            // IPv4 with a total length of 0 (segmentation offload: the frame's length) over UDP.
            var frame: [UInt8] = [0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, UInt8(index % 200), 1, 10, 0, 0, 2]
            frame += [0x03, 0xE8, 0x07, 0xD0, 0, 0, 0, 0]
            frame += [UInt8](repeating: 0x5A, count: length - frame.count)
            try frame.withUnsafeBytes {
                try writer.write($0, timestamp: 1_700_000_000_000_000_000 + UInt64(index), linkType: .raw)
            }
        }
        try writer.close()
        for threads in [1, 2] {
            var configuration = ReplayConfiguration()
            configuration.threads = threads
            configuration.queueLimit = 0
            configuration.arenaChunks = 2
            let outcome = BoundedReplay.run(configuration, files: [path])
            #expect(outcome != nil, "the replay did not finish: the reader waited for a chunk its own batch held")
            let result = outcome ?? nil
            #expect(result?.frames == frames && result?.wireBytes == frames * length)
        }
    }

    @Test func reportsRender() throws {
        let path = try SynthCapture.write(packets: 2_000, flows: 100, seed: 51, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let result = try run([path])
        let text = ReplayReport.text(result)
        #expect(text.contains("Frames:     2000"))
        #expect(text.contains("Top conversations by bytes"))
        // The top ten are the TCP and UDP rows with the most bytes, earliest first among equals.
        let naive = (result.sortedConversations(.tcp) + result.sortedConversations(.udp))
            .sorted { ($0.bytes, $1.firstTimestamp) > ($1.bytes, $0.firstTimestamp) }.prefix(10)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if let header = lines.firstIndex(where: { $0.hasPrefix("Top conversations by bytes") }) {
            let shown = lines[(header + 2)...].prefix { !$0.isEmpty }.map {
                $0.split(separator: " ").suffix(2).map { Int($0) ?? -1 }
            }
            #expect(shown == naive.map { [$0.frames, $0.bytes] })
        } else {
            Issue.record("no top conversations")
        }
        #expect(text.contains("Workstreams:\nWSID CPU   Name     Len WMark"))
        let json = ReplayReport.json(result)
        #expect(json.hasPrefix("{\"frames\":2000,\"wire_bytes\":\(result.wireBytes),\"captured_bytes\":"))
        #expect(json.contains("\"l3l4\":[{\"l3\":\"ipv4\""))
        #expect(json.contains("\"netisr\":{\"configuration\":"))
        let flows = ReplayReport.flowsCSV(result).split(separator: "\n")
        let header =
            "src,sport,dst,dport,proto,vlan,first_ns,last_ns,packets_fwd,bytes_fwd,packets_rev,bytes_rev,tcp_flags,"
            + "workstream,ended_by,icmp_type,icmp_code"
        #expect(flows.first.map(String.init) == header)
        #expect(flows.count == result.flowCount + 1)
        #expect(ReplayReport.flowsJSON(result).hasPrefix("[{\"src\":"))
    }
}
