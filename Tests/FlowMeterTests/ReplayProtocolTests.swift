// The packet type the reader leaves for ether: every network protocol survives the round trip,
// and a packet without one is classified by parsing its link layers.

import NetISR
import PacketWire
import Testing

@testable import FlowMeter

@Suite struct ReplayProtocolTests {
    @Test func everyNetworkProtocolSurvivesThePacketType() {
        for network in NetworkProtocol.allCases {
            let packet = Packet(packetType: ReplayProtocol.packetType(network))
            #expect(packet.packetType != 0)
            #expect(ReplayProtocol.network(of: packet) == network)
        }
    }

    @Test func aPacketWithoutATypeIsParsed() {
        // An Ethernet frame of type IPv6 (the header itself is irrelevant to the link-layer walk).
        let frame: [UInt8] =
            [UInt8](repeating: 0, count: 12) + [0x86, 0xDD] + [0x60] + [UInt8](repeating: 0, count: 39)
        frame.withUnsafeBytes { bytes in
            let ethernet = Packet(bytes: bytes, sourceID: ReplayProtocol.sourceID(linkType: .ethernet, file: 0))
            #expect(ReplayProtocol.network(of: ethernet) == .ipv6)
            let unsupported = Packet(
                bytes: bytes, sourceID: ReplayProtocol.sourceID(linkType: LinkType(rawValue: 147), file: 0))
            #expect(ReplayProtocol.network(of: unsupported) == .other)
        }
    }
}
