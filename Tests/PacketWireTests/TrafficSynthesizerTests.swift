// The synthesizer's traffic, parsed back: only addresses set aside for documentation and
// benchmarks, services on the transports they use, every server number a distinct address, and
// the same bytes for the same seed.

import PacketWire
import Testing

@Suite struct TrafficSynthesizerTests {
    /// Every frame of a synthesized capture, parsed, with a digest of its bytes.
    static func parsed(packets: Int, flows: Int, seed: UInt64) -> (summaries: [PacketSummary], digest: UInt64) {
        var synthesizer = TrafficSynthesizer(.init(packets: packets, flows: flows, seed: seed))
        var summaries: [PacketSummary] = []
        var digest: UInt64 = 0xcbf2_9ce4_8422_2325
        synthesizer.generate { frame, timestamp in
            summaries.append(PacketParser.parse(frame, linkType: .ethernet))
            for byte in frame { digest = (digest ^ UInt64(byte)) &* 0x100_0000_01b3 }
            digest = (digest ^ timestamp) &* 0x100_0000_01b3
        }
        return (summaries, digest)
    }

    /// 10.0.0.0/8 (RFC 1918), 198.18.0.0/15 (RFC 2544) or 2001:db8::/32 (RFC 3849).
    static func isSetAside(_ address: IPAddress) -> Bool {
        if address.isIPv6 { return address.high >> 32 == 0x2001_0DB8 }
        let value = UInt32(truncatingIfNeeded: address.low)
        return value >> 24 == 10 || value >> 17 == 0xC612 >> 1
    }

    @Test func addressesAndPortsAreThoseSetAsideForTheirUse() throws {
        let (summaries, _) = Self.parsed(packets: 20_000, flows: 2_000, seed: 7)
        var transports: [TransportProtocol: Int] = [:]
        var misfits: [String] = []
        for summary in summaries {
            let flow = try #require(summary.flow)
            transports[summary.transport, default: 0] += 1
            let ports = [flow.sourcePort, flow.destinationPort]
            let servicePlausible =
                switch summary.transport {
                case .tcp: !ports.contains(123)  // NTP is not served over TCP
                case .udp: ports.contains { [53, 123, 443, 5060].contains($0) }
                default: true
                }
            if !(Self.isSetAside(flow.source) && Self.isSetAside(flow.destination) && servicePlausible) {
                misfits.append("\(summary.transport) \(flow)")
            }
        }
        #expect(misfits.isEmpty, "\(misfits.count) frames, the first: \(misfits.prefix(3))")
        #expect(transports[.tcp, default: 0] > 0 && transports[.udp, default: 0] > 0)
        #expect(transports[.icmp, default: 0] > 0 && transports[.icmpv6, default: 0] > 0)
    }

    /// Servers are drawn from 4,096 numbers; each must be an address of its own (198.18.0.0 plus
    /// the number, or 2001:db8::c612:0 plus it). 20,000 draws leave almost none unused.
    @Test func everyServerNumberIsADistinctAddress() throws {
        let (summaries, _) = Self.parsed(packets: 20_000, flows: 20_000, seed: 11)
        var servers = Set<UInt32>()
        for summary in summaries {
            let flow = try #require(summary.flow)
            for address in [flow.source, flow.destination] {
                let value = UInt32(truncatingIfNeeded: address.low)
                if value >> 16 == 0xC612 { servers.insert(value & 0xFFFF) }
            }
        }
        #expect(servers.allSatisfy { $0 < 4_096 })
        #expect(servers.count > 4_000, "\(servers.count) distinct servers")
    }

    @Test func theSameSeedGivesTheSameBytes() {
        let first = Self.parsed(packets: 3_000, flows: 300, seed: 21).digest
        #expect(Self.parsed(packets: 3_000, flows: 300, seed: 21).digest == first)
        #expect(Self.parsed(packets: 3_000, flows: 300, seed: 22).digest != first)
    }
}
