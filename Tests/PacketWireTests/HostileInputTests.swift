// Untrusted input never crashes: deterministic mutations (bit flips, truncations, length fields
// set to extremes) of real captures and of our own files go through the reader and the parser.
// Completing without a trap is the assertion; the reader must also end with a record count or
// a typed error, never loop. The libFuzzer targets (Fuzz/) search far more widely.

import PacketWire
import TestSupport
import Testing

@Suite struct HostileInputTests {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(1, bound))) }
    }

    static func seeds() -> [[UInt8]] {
        var seeds: [[UInt8]] = []
        let writer = CaptureWriter(inMemory: .pcapng(nanosecond: true))
        for frame in CaptureFileTests.frames {
            try? frame.withUnsafeBytes { try writer.write($0, timestamp: 1, linkType: .ethernet) }
        }
        try? writer.close()
        seeds.append(writer.memory)
        if let root = SharedFixtures.root {
            for name in [
                "802.1ad_QinQ.pcap", "babel.pcap", "hoobr_rt6_print.pcap", "icmp-length-zero.pcapng",
                "ipv6-srh-ipproto-ether.pcap",
            ] {
                if let bytes = SharedFixtures.bytes("\(root)/captures/tcpdump/\(name)"), bytes.count < 200_000 {
                    seeds.append(bytes)
                }
            }
        }
        return seeds
    }

    @Test func mutatedCapturesNeverCrash() {
        var random = Generator(state: 0x5EED)
        var outcomes = (records: 0, errors: 0)
        for seed in Self.seeds() {
            for _ in 0..<400 {
                var bytes = seed
                for _ in 0..<(1 + random.below(4)) {
                    guard !bytes.isEmpty else { break }
                    switch random.below(4) {
                    case 0: bytes[random.below(bytes.count)] ^= UInt8(1 << random.below(8))
                    case 1: bytes.removeLast(random.below(min(64, bytes.count)))
                    case 2:
                        let at = random.below(max(1, bytes.count - 4))
                        let extreme: [UInt8] = random.below(2) == 0 ? [0xFF, 0xFF, 0xFF, 0x7F] : [0, 0, 0, 0]
                        for offset in 0..<min(4, bytes.count - at) { bytes[at + offset] = extreme[offset] }
                    default: bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
                    }
                }
                let (records, error) = readAll(bytes)
                for record in records {
                    _ = record.0.withUnsafeBytes { PacketParser.parse($0, linkType: record.3) }
                }
                outcomes.records += records.count
                if error != nil { outcomes.errors += 1 }
            }
        }
        #expect(outcomes.records > 0)
        #expect(outcomes.errors > 0)
    }

    @Test func randomBytesThroughEveryLinkType() {
        var random = Generator(state: 42)
        let linkTypes: [LinkType] = [.ethernet, .linuxSLL, .linuxSLL2, .raw, .ipv4, .ipv6, .null, .loop]
        var seen = Set<String>()
        for _ in 0..<20_000 {
            let length = random.below(120)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if length > 14, random.below(2) == 0 { bytes[12] = 0x08; bytes[13] = 0 }
            if length > 20, random.below(2) == 0 { bytes[14] = 0x45 }
            let summary = bytes.withUnsafeBytes {
                PacketParser.parse($0, linkType: linkTypes[random.below(linkTypes.count)])
            }
            seen.insert("\(summary.network)/\(summary.transport)")
        }
        #expect(seen.count > 4)
    }
}
