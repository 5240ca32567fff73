// The fixed-offset parse of the commonest frames (Ethernet + IPv4 or IPv6 + TCP/UDP/ICMP) must
// give exactly what the header walk gives, and leave every other frame to the walk.

import Testing

@testable import PacketWire

/// Whether two parses found the same thing (every field a table or flow record reads).
func sameParse(_ first: PacketSummary, _ second: PacketSummary) -> Bool {
    first.network == second.network && first.transport == second.transport && first.flow == second.flow
        && first.vlan == second.vlan && first.tcpFlags == second.tcpFlags && first.icmpTypeCode == second.icmpTypeCode
        && Array(first.events) == Array(second.events)
}

@Suite struct CommonFrameParseTests {
    static let tcp = Frame.ethernet(
        type: 0x0800, Frame.ipv4(protocol: 6, source: 0xC0A8_0101, destination: 0x0A00_0002, Frame.tcp(flags: 0x18)))
    static let udp = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp()))
    static let icmp = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 1, [8, 0, 0, 0, 0, 1, 0, 1]))
    static let offload = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(), totalLength: 0))
    static let tcp6 = Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 6, Frame.tcp(flags: 0x11)))
    static let udp6 = Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 17, Frame.udp()))
    static let icmp6 = Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 58, [128, 0, 0, 0, 0, 1, 0, 1]))
    /// One 802.1Q tag (VLAN 5, priority bits set: the VLAN is the tag's low 12 bits).
    static let taggedTCP = Frame.ethernet(
        type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(flags: 0x02)), vlans: [0xE005])
    static let taggedUDP6 = Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 17, Frame.udp()), vlans: [9])

    /// An IPv6 frame whose payload length says 0 (a jumbogram or offload: the walk's business).
    static func withPayloadLengthZero(_ frame: [UInt8]) -> [UInt8] {
        var changed = frame
        changed[18] = 0
        changed[19] = 0
        return changed
    }

    /// (frame, parse, walk, whether the fixed-offset path took it)
    static func both(_ frame: [UInt8]) -> (PacketSummary, PacketSummary, Bool) {
        frame.withUnsafeBytes { bytes in
            var fast = PacketSummary()
            var walked = PacketSummary()
            let taken = PacketParser.parseCommonFrame(bytes, into: &fast)
            PacketParser.parse(bytes, linkType: .ethernet, into: &fast)
            PacketParser.walk(bytes, linkType: .ethernet, into: &walked)
            return (fast, walked, taken)
        }
    }

    @Test func commonFramesTakeTheFixedOffsetsAndMatchTheWalk() {
        // ICMP over IPv6 and ICMPv6 over IPv4 are odd but classified by protocol number alike.
        let crossed = [
            Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 1, [8, 0, 0, 0])),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 58, [128, 0, 0, 0])),
        ]
        let common = [Self.tcp, Self.udp, Self.icmp, Self.offload, Self.tcp6, Self.udp6, Self.icmp6]
        for frame in common + [Self.taggedTCP, Self.taggedUDP6] + crossed {
            let (fast, walked, taken) = Self.both(frame)
            #expect(taken)
            #expect(sameParse(fast, walked))
        }
        let (fast, _, _) = Self.both(Self.tcp)
        #expect(fast.flow?.source == IPAddress("192.168.1.1") && fast.flow?.destinationPort == 80)
        #expect(fast.tcpFlags == 0x18 && fast.events.map(\.kind) == [.ipv4, .tcp])
        let (fast6, _, _) = Self.both(Self.tcp6)
        #expect(fast6.network == .ipv6 && fast6.flow?.source == IPAddress("2001:db8::1"))
        #expect(fast6.tcpFlags == 0x11 && fast6.events.map(\.kind) == [.ipv6, .tcp])
        #expect(fast6.vlan == nil)
        let (tagged, _, _) = Self.both(Self.taggedTCP)
        #expect(tagged.vlan == 5 && tagged.network == .ipv4 && tagged.flow?.destinationPort == 80)
        let (tagged6, _, _) = Self.both(Self.taggedUDP6)
        #expect(tagged6.vlan == 9 && tagged6.network == .ipv6 && tagged6.transport == .udp)
    }

    @Test func otherFramesAreLeftToTheWalk() {
        let left = [
            // Two tags, or a tag other than 802.1Q's.
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp()), vlans: [5, 6]),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp()), vlans: [5], outerType: 0x88A8),
            Frame.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28), vlans: [5]),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(), headerWords: 6), vlans: [5]),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(), headerWords: 6)),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(), fragmentOffset: 10)),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(), totalLength: 30)),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp(), totalLength: 27)),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 47, [0, 0, 0x08, 0])),
            Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 0, [17, 0, 1, 4, 0, 0, 0, 0] + Frame.udp())),
            Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 44, [17, 0, 0, 0, 0, 0, 0, 1] + Frame.udp())),
            Self.withPayloadLengthZero(Self.tcp6),
            Frame.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28)),
            Array(Self.tcp.prefix(50)),
        ]
        for frame in left {
            let (fast, walked, taken) = Self.both(frame)
            #expect(!taken)
            #expect(sameParse(fast, walked))
        }
    }

    /// Random damage in and around the headers, and truncation: both paths agree on every frame.
    @Test func damagedFramesParseAlikeEitherWay() {
        var generator = SystemRandomNumberGenerator()
        var (taken, differing) = (0, 0)
        let bases = [
            Self.tcp, Self.udp, Self.icmp, Self.offload, Self.tcp6, Self.udp6, Self.icmp6, Self.taggedTCP,
            Self.taggedUDP6,
        ]
        for round in 0..<40_000 {
            var frame = bases[round % bases.count]
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                frame[Int.random(in: 12..<frame.count, using: &generator)] = UInt8.random(
                    in: 0...255, using: &generator)
            }
            frame.removeLast(Int.random(in: 0...(frame.count - 12) / 4, using: &generator))
            let (fast, walked, tookFixedOffsets) = Self.both(frame)
            if tookFixedOffsets { taken += 1 }
            if !sameParse(fast, walked) { differing += 1 }
        }
        #expect(taken > 1_000 && taken < 40_000)
        #expect(differing == 0)
    }
}
