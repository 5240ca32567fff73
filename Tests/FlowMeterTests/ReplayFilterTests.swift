// A replay's read filter (`--filter`): frames that do not match are counted and skipped, and what
// remains is accounted exactly as without the filter. Needs libpcap (CI installs it); tcpdump,
// when installed, is the reference for which frames an expression keeps.

import PacketWire
import TestSupport
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ReplayFilterTests {
    /// Whether libpcap can compile filters here; says so when it cannot.
    static func libpcapPresent() -> Bool {
        if (try? PacketFilter("ip", linkType: .ethernet)) != nil { return true }
        print("libpcap is not installed; skipping")
        return false
    }

    /// An IPv4 UDP datagram to port 53: the IP header, then the UDP header and four bytes.
    static let udpDatagram: [UInt8] = [
        0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        0x13, 0x88, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4,
    ]

    func replay(_ files: [String], filter: String?) throws -> ReplayResult {
        var configuration = ReplayConfiguration()
        configuration.threads = 2
        configuration.filter = filter
        return try Replay(configuration).run(files: files)
    }

    @Test func filteredFramesAreCountedAndTheRestAccountedAsTcpdumpSelectsThem() throws {
        guard Self.libpcapPresent() else { return }
        let path = try SynthCapture.write(packets: 5_000, flows: 300, seed: 51, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let everything = try replay([path], filter: nil)
        for expression in [
            "tcp port 80 or udp port 53", "ip6", "vlan", "icmp or icmp6", "tcp[tcpflags] & tcp-syn != 0",
        ] {
            let result = try replay([path], filter: expression)
            #expect(result.filter == expression)
            #expect(result.frames > 0 && result.filteredFrames > 0)
            #expect(result.frames + result.filteredFrames == everything.frames)
            // The skipped frames were never offered: ether saw exactly the kept ones.
            let ether = result.snapshot.work.filter { $0.name == "ether" }.reduce(0) { $0 + $1.dispatched + $1.queued }
            #expect(ether == result.frames)
            #expect(result.snapshot.totals.offered == result.snapshot.totals.accountedFor)
            if Shell.has("tcpdump"), let counted = Shell.run("tcpdump -n -r '\(path)' '\(expression)' | wc -l") {
                #expect(Int(counted.output.filter { !$0.isWhitespace }) == result.frames, "\(expression)")
            }
        }
    }

    /// UDP frames, tagged or not, are all of what the UDP conversation table counts: filtered to
    /// them, the table is the unfiltered one.
    @Test func aFilterToOneProtocolLeavesItsConversationTableAsItWas() throws {
        guard Self.libpcapPresent() else { return }
        let path = try SynthCapture.write(packets: 5_000, flows: 300, seed: 52, format: .pcapng(nanosecond: true))
        defer { unlink(path) }
        let everything = try replay([path], filter: nil)
        let udp = try replay([path], filter: "udp or (vlan and udp)")
        #expect(udp.conversations[.udp, default: []].count > 10)
        #expect(udp.sortedConversations(.udp) == everything.sortedConversations(.udp))
        #expect(udp.conversations[.tcp, default: []].isEmpty)
        #expect(udp.layers.allSatisfy { $0.transport == .udp })
    }

    /// Frames batched for the engine, then more skipped bytes than the packet arena holds: the
    /// batch must go before the reader needs its chunk again, or the reader waits for itself.
    @Test func skippingMoreThanTheArenaHoldsKeepsTheReaderMoving() throws {
        guard Self.libpcapPresent() else { return }
        let path = "/tmp/netisr-filter-skip-\(getpid()).pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: false))
        let kept: [UInt8] = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x08, 0x00] + Self.udpDatagram
        var skipped = kept
        skipped[14 + 9] = 6  // TCP: not kept
        skipped += [UInt8](repeating: 0, count: 1_400)
        var frames = 0
        func write(_ frame: [UInt8]) throws {
            try frame.withUnsafeBytes { try writer.write($0, timestamp: UInt64(frames), linkType: .ethernet) }
            frames += 1
        }
        // Each run of skipped frames (and its records' headers) spans two of the arena's chunks,
        // and the runs together go round the whole arena.
        let skippedPerRun = 2 * PacketArena.chunkSize / (skipped.count + 16) + 1
        let runs = PacketArena.defaultChunks / 2 + 1
        for _ in 0..<runs {
            try write(kept)
            for _ in 0..<skippedPerRun { try write(skipped) }
        }
        try writer.close()
        var configuration = ReplayConfiguration()
        configuration.threads = 1
        configuration.filter = "udp"
        let outcome = BoundedReplay.run(configuration, files: [path])
        #expect(outcome != nil, "the replay did not finish: the reader waited for a chunk its own batch held")
        #expect((outcome ?? nil)?.frames == runs)
    }

    /// An expression that needs a link layer the file lacks: the file's error names it, and its
    /// frames are counted as filtered, not accounted unfiltered.
    @Test func anExpressionThatDoesNotApplyToAFilesLinkTypeIsReported() throws {
        guard Self.libpcapPresent() else { return }
        let path = "/tmp/netisr-filter-raw-\(getpid()).pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: false))
        for index in 0..<10 {
            try Self.udpDatagram.withUnsafeBytes { try writer.write($0, timestamp: UInt64(index), linkType: .raw) }
        }
        try writer.close()
        let result = try replay([path], filter: "ether host 0:1:2:3:4:5")
        #expect(result.frames == 0 && result.filteredFrames == 10)
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.description.contains("does not apply to link type") == true)
        let kept = try replay([path], filter: "udp port 53")
        #expect(kept.frames == 10 && kept.errors.isEmpty)
    }
}
