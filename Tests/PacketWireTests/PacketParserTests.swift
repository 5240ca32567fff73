// Header parsing: classification, flow keys, VLANs, tunnels, fragments, truncation.

import PacketWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct PacketParserTests {
    @Test func ethernetIPv4TCP() {
        let summary = Frame.parse(Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(flags: 0x12))))
        #expect(summary.network == .ipv4 && summary.transport == .tcp)
        #expect(summary.flow?.source == IPAddress("10.0.0.1") && summary.flow?.destination == IPAddress("10.0.0.2"))
        #expect(
            summary.flow?.sourcePort == 40_000 && summary.flow?.destinationPort == 80 && summary.flow?.ipProtocol == 6)
        #expect(summary.tcpFlags == 0x12)
        #expect(summary.events.map(\.kind) == [.ipv4, .tcp])
    }

    /// A summary parsed into again (as the reader and the workers do, frame after frame) holds the
    /// new frame's parse only: nothing of a tagged TCP frame's parse survives an ARP frame's.
    @Test func aReusedSummaryHoldsOnlyTheLastParse() {
        let tagged = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(flags: 0x11)), vlans: [7])
        let arp = Frame.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28))
        let fresh = Frame.parse(arp)
        var summary = PacketSummary()
        for parse in [PacketParser.parse(_:linkType:into:), PacketParser.parseFlowAddresses(_:linkType:into:)] {
            tagged.withUnsafeBytes { PacketParser.parse($0, linkType: .ethernet, into: &summary) }
            #expect(summary.vlan == 7 && summary.tcpFlags == 0x11 && summary.events.count == 2)
            #expect(summary.flow != nil && summary.transport == .tcp)
            arp.withUnsafeBytes { parse($0, .ethernet, &summary) }
            #expect(summary.network == .arp && fresh.network == .arp)
            #expect(summary.transport == fresh.transport && summary.flow == fresh.flow && summary.vlan == nil)
            #expect(summary.tcpFlags == 0 && summary.events.isEmpty && Array(summary.events).isEmpty)
        }
    }

    /// The reader's fixed-offset path answers for Ethernet (with at most one 802.1Q tag) + IPv4
    /// frames only, and then exactly as `parseFlowAddresses` does: checked on frames it must take,
    /// frames it must leave (stacked or 802.1ad tags, options, other versions and types, short
    /// lengths, truncation) and random damage.
    @Test func fixedOffsetIPv4AddressesAgreeWithTheParse() {
        let plain = Frame.ethernet(
            type: 0x0800, Frame.ipv4(protocol: 6, source: 0xC0A8_0101, destination: 0x0A00_0002, Frame.tcp()))
        let offload = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp(), totalLength: 0))
        let tagged = Frame.ethernet(
            type: 0x0800, Frame.ipv4(protocol: 6, source: 0xC0A8_0101, destination: 0x0A00_0002, Frame.tcp()),
            vlans: [5])
        let declined = [
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp()), vlans: [5, 6]),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp()), vlans: [5], outerType: 0x88A8),
            Array(tagged.prefix(37)),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(), headerWords: 6)),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(), totalLength: 19)),
            Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 17, Frame.udp())),
            Frame.ethernet(type: 0x0800, Frame.ipv6(next: 17, Frame.udp())),
            Frame.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28)),
            Array(plain.prefix(33)),
        ]
        for frame in [plain, tagged] {
            frame.withUnsafeBytes {
                let pair = PacketParser.ethernetIPv4Addresses($0)
                #expect(pair?.source == 0xC0A8_0101 && pair?.destination == 0x0A00_0002)
            }
        }
        offload.withUnsafeBytes { #expect(PacketParser.ethernetIPv4Addresses($0) != nil) }
        for frame in declined {
            frame.withUnsafeBytes { #expect(PacketParser.ethernetIPv4Addresses($0) == nil) }
        }
        let (answered, disagreed) = Self.damageFixedOffsets(
            [plain, offload, tagged], headerEnd: 38, network: .ipv4
        ) { bytes in
            PacketParser.ethernetIPv4Addresses(bytes).map {
                (IPAddress(ipv4: $0.source), IPAddress(ipv4: $0.destination))
            }
        }
        #expect(answered > 1_000 && answered < 20_000)
        #expect(disagreed == 0)
    }

    /// Damages `bases` 20,000 times (1–3 random bytes from the Ethernet type to `headerEnd`, and a
    /// random truncation) and counts the frames `fixedOffsets` answers for and those where its
    /// addresses or `network` differ from `parseFlowAddresses`.
    static func damageFixedOffsets(
        _ bases: [[UInt8]], headerEnd: Int, network: NetworkProtocol,
        _ fixedOffsets: (UnsafeRawBufferPointer) -> (IPAddress, IPAddress)?
    ) -> (answered: Int, disagreed: Int) {
        var generator = SystemRandomNumberGenerator()
        var summary = PacketSummary()
        var (answered, disagreed) = (0, 0)
        for round in 0..<20_000 {
            var frame = bases[round % bases.count]
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                frame[Int.random(in: 12..<headerEnd, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            frame.removeLast(Int.random(in: 0...frame.count - (headerEnd - 4), using: &generator))
            frame.withUnsafeBytes { bytes in
                guard let pair = fixedOffsets(bytes) else { return }
                answered += 1
                PacketParser.parseFlowAddresses(bytes, linkType: .ethernet, into: &summary)
                if summary.network != network || summary.flow?.source != pair.0 || summary.flow?.destination != pair.1 {
                    disagreed += 1
                }
            }
        }
        return (answered, disagreed)
    }

    /// The same for IPv6: the reader's fixed offsets answer for Ethernet II (at most one 802.1Q
    /// tag) + IPv6 only, and then with `parseFlowAddresses`'s addresses.
    @Test func fixedOffsetIPv6AddressesAgreeWithTheParse() {
        let plain = Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 6, source: Frame.v6(7), Frame.tcp()))
        let tagged = Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 6, source: Frame.v6(7), Frame.tcp()), vlans: [5])
        for frame in [plain, tagged] {
            frame.withUnsafeBytes {
                let pair = PacketParser.ethernetIPv6Addresses($0)
                #expect(pair?.source == IPAddress("2001:db8::7") && pair?.destination == IPAddress("2001:db8::2"))
            }
        }
        let declined = [
            Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 6, Frame.tcp()), vlans: [5, 6]),
            Array(tagged.prefix(57)),
            Frame.ethernet(type: 0x86DD, Frame.ipv4(protocol: 6, Frame.tcp())),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp())), Array(plain.prefix(53)),
        ]
        for frame in declined {
            frame.withUnsafeBytes { #expect(PacketParser.ethernetIPv6Addresses($0) == nil) }
        }
        let (answered, disagreed) = Self.damageFixedOffsets([plain, tagged], headerEnd: 58, network: .ipv6) { bytes in
            PacketParser.ethernetIPv6Addresses(bytes).map { ($0.source, $0.destination) }
        }
        #expect(answered > 1_000 && answered < 20_000)
        #expect(disagreed == 0)
    }

    @Test func stackedVLANsAnd8021ad() {
        let frame = Frame.ethernet(
            type: 0x86DD, Frame.ipv6(next: 17, Frame.udp()), vlans: [100, 200], outerType: 0x88A8)
        let summary = Frame.parse(frame)
        #expect(summary.network == .ipv6 && summary.transport == .udp && summary.vlan == 100)
        #expect(summary.flow?.sourcePort == 5353)
    }

    @Test func llcSnapCarriesIPv4AndOtherLLCIsOther() {
        let ip = Frame.ipv4(protocol: 17, Frame.udp())
        let snap: [UInt8] = [0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00] + ip
        #expect(Frame.parse(Frame.ethernet(type: UInt16(snap.count), snap)).network == .ipv4)
        let stp: [UInt8] = [0x42, 0x42, 0x03] + [UInt8](repeating: 0, count: 35)
        #expect(Frame.parse(Frame.ethernet(type: UInt16(stp.count), stp)).network == .other)
    }

    @Test func ipv6ExtensionHeadersAndFragments() {
        let hopByHop: [UInt8] = [44, 0, 0, 0, 0, 0, 0, 0]
        let firstFragment: [UInt8] = [6, 0, 0, 1, 0, 0, 0, 9]
        let first = Frame.parse(
            Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 0, hopByHop + firstFragment + Frame.tcp())))
        #expect(first.network == .ipv6 && first.transport == .tcp && first.flow?.destinationPort == 80)
        let laterFragment: [UInt8] = [6, 0, 0x05, 0x01, 0, 0, 0, 9]  // offset 160 bytes
        let later = Frame.parse(Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 44, laterFragment + [1, 2, 3, 4])))
        #expect(later.network == .ipv6 && later.transport == .none)
        #expect(later.flow?.sourcePort == 0)
        #expect(later.events.isEmpty)  // tshark leaves non-first IPv6 fragments out of the ipv6 table
    }

    @Test func ipv4FragmentsOnlyTheFirstCarriesPorts() {
        let first = Frame.parse(
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp(), moreFragments: true)))
        #expect(first.transport == .udp && first.flow?.destinationPort == 53)
        let later = Frame.parse(
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, [1, 2, 3, 4, 5, 6, 7, 8], fragmentOffset: 100)))
        #expect(later.network == .ipv4 && later.transport == .none && later.flow?.destinationPort == 0)
        #expect(later.events.map(\.kind) == [.ipv4])
    }

    @Test func icmpMessagesCarryTheirTypeAndCodeWhenTheFlowIsTheirs() {
        let echo = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 1, [8, 0, 0xF7, 0xFF, 0, 1, 0, 1]))
        #expect(Frame.parse(echo).icmpTypeCode == 0x0800)
        let tagged = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 1, [3, 13, 0, 0]), vlans: [7])
        #expect(Frame.parse(tagged).icmpTypeCode == 0x030D)
        let reply6 = Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 58, [129, 0, 0, 0]))
        #expect(Frame.parse(reply6).icmpTypeCode == 0x8100)
        // One byte of ICMP, a later fragment, an ICMP message inside a tunnel, TCP: none.
        #expect(Frame.parse(Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 1, [8]))).icmpTypeCode == nil)
        let later = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 1, [8, 0, 0, 0], fragmentOffset: 4))
        #expect(Frame.parse(later).icmpTypeCode == nil)
        let tunnelled = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 4, Frame.ipv4(protocol: 1, [8, 0, 0, 0])))
        #expect(Frame.parse(tunnelled).transport == .icmp && Frame.parse(tunnelled).icmpTypeCode == nil)
        #expect(Frame.parse(Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp()))).icmpTypeCode == nil)
    }

    @Test func icmpErrorQuotesAreNotASecondPacket() {
        let quoted = Frame.ipv4(protocol: 17, source: 0x0A00_0002, destination: 0x0A00_0001, Frame.udp())
        let icmp: [UInt8] = [3, 3, 0, 0, 0, 0, 0, 0] + quoted
        let summary = Frame.parse(Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 1, icmp)))
        #expect(summary.network == .ipv4 && summary.transport == .icmp)
        #expect(summary.events.map(\.kind) == [.ipv4])
    }

    @Test func tunnelsCountEveryLayerButTheFlowIsTheOuterOne() {
        let inner = Frame.ipv6(next: 6, Frame.tcp(source: 1, destination: 2))
        let summary = Frame.parse(Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 41, inner)))
        #expect(summary.network == .ipv4 && summary.transport == .tcp)
        #expect(summary.events.map(\.kind) == [.ipv4, .ipv6, .tcp])
        #expect(summary.flow?.ipProtocol == 41 && summary.flow?.sourcePort == 0)
    }

    @Test func truncationClassifiesAsFarAsItParses() {
        let full = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp()))
        // Cut inside the TCP header: still TCP (tshark entered it) but no ports and no TCP event.
        let cutTCP = Frame.parse(Array(full[0..<(14 + 20 + 10)]))
        #expect(cutTCP.network == .ipv4 && cutTCP.transport == .tcp && cutTCP.flow?.sourcePort == 0)
        #expect(cutTCP.events.map(\.kind) == [.ipv4])
        // Cut inside the IPv4 header: IPv4 (entered), no flow.
        let cutIP = Frame.parse(Array(full[0..<(14 + 12)]))
        #expect(cutIP.network == .ipv4 && cutIP.transport == .none && cutIP.flow == nil)
        // Cut inside the Ethernet header.
        #expect(Frame.parse(Array(full[0..<10])).network == .other)
        #expect(Frame.parse([]).network == .other)
    }

    @Test func bogusIPv4HeadersAreIPv4WithoutAFlow() {
        var badLength = Frame.ipv4(protocol: 6, Frame.tcp())
        badLength[0] = 0x44  // IHL 4 (< 5)
        let summary = Frame.parse(Frame.ethernet(type: 0x0800, badLength))
        #expect(summary.network == .ipv4 && summary.flow == nil && summary.transport == .none)
        let shortTotal = Frame.ipv4(protocol: 6, Frame.tcp(), totalLength: 12)
        #expect(Frame.parse(Frame.ethernet(type: 0x0800, shortTotal)).flow == nil)
        // Total length 0: a segmentation-offload packet whose length is the frame's.
        let offload = Frame.ipv4(protocol: 6, Frame.tcp(), totalLength: 0)
        #expect(Frame.parse(Frame.ethernet(type: 0x0800, offload)).transport == .tcp)
    }

    @Test func wrongIPv6VersionIsNotIPv6() {
        var packet = Frame.ipv6(next: 17, Frame.udp())
        packet[0] = 0x40
        #expect(Frame.parse(Frame.ethernet(type: 0x86DD, packet)).network == .other)
        #expect(Frame.parse(packet, .ipv6).network == .none)
    }

    @Test func otherLinkTypes() {
        let ip = Frame.ipv4(protocol: 17, Frame.udp())
        #expect(Frame.parse(ip, .raw).transport == .udp)
        #expect(Frame.parse(ip, .ipv4).transport == .udp)
        #expect(Frame.parse(Frame.le32(2) + ip, .null).network == .ipv4)
        #expect(Frame.parse(Frame.be32(2) + ip, .null).network == .ipv4)  // written by a big-endian host
        #expect(Frame.parse(Frame.be32(28) + Frame.ipv6(next: 58, [128, 0, 0, 0]), .loop).transport == .icmpv6)
        let sll = [0, 0, 0, 1, 0, 6] + [UInt8](repeating: 0, count: 8) + Frame.be16(0x0800) + ip
        #expect(Frame.parse(sll, .linuxSLL).transport == .udp)
        let sll2 = Frame.be16(0x0800) + [0, 0, 0, 0, 0, 1, 0, 1, 0, 6] + [UInt8](repeating: 0, count: 8) + ip
        #expect(Frame.parse(sll2, .linuxSLL2).transport == .udp)
        #expect(Frame.parse(ip, LinkType(rawValue: 147)).network == .other)
        #expect(!LinkType(rawValue: 147).isSupported && LinkType.linuxSLL2.isSupported)
    }

    @Test func pppFramesWithAndWithoutHDLCFramingAndCompressedProtocols() {
        let ip = Frame.ipv4(protocol: 17, Frame.udp())
        let ip6 = Frame.ipv6(next: 6, Frame.tcp())
        for linkType in [LinkType.ppp, .pppHDLC] {
            #expect(Frame.parse([0xFF, 0x03, 0x00, 0x21] + ip, linkType).transport == .udp)
            #expect(Frame.parse([0x00, 0x21] + ip, linkType).transport == .udp)
            #expect(Frame.parse([0xFF, 0x03, 0x21] + ip, linkType).transport == .udp)  // protocol compressed
            #expect(Frame.parse([0x57] + ip6, linkType).transport == .tcp)
            #expect(Frame.parse([0xFF, 0x03, 0x00, 0x57] + ip6, linkType).flow?.destinationPort == 80)
            // Control protocols and MPLS lead nowhere here; cut frames neither.
            #expect(Frame.parse([0xFF, 0x03, 0xC0, 0x21, 1, 1, 0, 4], linkType).network == .other)
            #expect(Frame.parse([0xFF, 0x03, 0x02, 0x81] + ip, linkType).network == .other)
            for cut in [[], [0xFF], [0xFF, 0x03], [0xFF, 0x03, 0x00]] as [[UInt8]] {
                #expect(Frame.parse(cut, linkType).network == .other)
            }
            #expect(linkType.isSupported && linkType.description == "ppp")
        }
    }

    @Test func addressesParseAndPrintLikeInetNtop() {
        for text in [
            "10.1.2.3", "2001:db8::1", "::", "::1", "fe80::200:f8ff:fe21:67cf", "::ffff:1.2.3.4", "::1.2.3.4",
            "1:0:1:0:1:0:1:0",
        ] {
            #expect(IPAddress(text)?.description == text)
        }
        for bad in ["1.2.3", "256.1.1.1", "1::2::3", "12345::", ""] {
            #expect(IPAddress(bad) == nil)
        }
        #expect(IPAddress("1.2.3.4")! < IPAddress("::1")!)
    }

    /// Random addresses, zero groups and runs included, print exactly as glibc's inet_ntop prints them.
    @Test func randomAddressesPrintLikeInetNtop() {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<20_000 {
            var bytes = [UInt8](repeating: 0, count: 16)
            for group in 0..<8 where Int.random(in: 0..<3, using: &generator) != 0 {
                let value = UInt16.random(in: 0...(round % 2 == 0 ? 0xFFFF : 0x1F), using: &generator)
                (bytes[2 * group], bytes[2 * group + 1]) = (UInt8(value >> 8), UInt8(value & 0xFF))
            }
            let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            var text = [CChar](repeating: 0, count: 64)
            _ = inet_ntop(AF_INET6, bytes, &text, 64)
            let expected = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            #expect(IPAddress(ipv6High: high, low: low).description == expected)
            let ipv4 = UInt32(truncatingIfNeeded: low)
            var ipv4Bytes = [UInt8(ipv4 >> 24), UInt8(ipv4 >> 16 & 0xFF), UInt8(ipv4 >> 8 & 0xFF), UInt8(ipv4 & 0xFF)]
            _ = inet_ntop(AF_INET, &ipv4Bytes, &text, 64)
            let expectedIPv4 = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            #expect(IPAddress(ipv4: ipv4).description == expectedIPv4)
        }
    }
}
