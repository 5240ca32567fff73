// TrafficAccounts: everything one workstream (or the link-layer handler) counts. Only the
// handler calls of one workstream touch its accounts — the engine never runs two calls of one
// workstream at once — so no lock is needed; accounts are merged after the engine stops.

import PacketWire

/// Counts for one part of the traffic.
struct TrafficAccounts {
    var frames = 0
    var wireBytes = 0
    var capturedBytes = 0
    var firstTimestamp = UInt64.max
    var lastTimestamp: UInt64 = 0
    /// [network][transport] frame counts.
    var layers = [[Int]](
        repeating: [Int](repeating: 0, count: TransportProtocol.allCases.count), count: NetworkProtocol.allCases.count)
    var ipv4 = ConversationTable()
    var ipv6 = ConversationTable()
    var tcp = ConversationTable()
    var udp = ConversationTable()
    var flows = FlowTable()
    /// Frames of link types this library does not parse, by link type.
    var unsupportedLinkTypes: [UInt32: Int] = [:]

    mutating func countFrame(wireLength: Int, capturedLength: Int, timestamp: UInt64) {
        frames += 1
        wireBytes += wireLength
        capturedBytes += capturedLength
        firstTimestamp = min(firstTimestamp, timestamp)
        lastTimestamp = max(lastTimestamp, timestamp)
    }

    mutating func countLayers(_ network: NetworkProtocol, _ transport: TransportProtocol) {
        layers[Self.index(network)][Self.index(transport)] += 1
    }

    /// Accounts a parsed frame: totals, layers, conversation events and its flow.
    mutating func account(
        _ summary: borrowing PacketSummary, wireLength: Int, capturedLength: Int, timestamp: UInt64, workstream: Int
    ) {
        countFrame(wireLength: wireLength, capturedLength: capturedLength, timestamp: timestamp)
        countLayers(summary.network, summary.transport)
        for event in summary.events {
            switch event.kind {
            case .ipv4:
                ipv4.count(
                    source: event.source, sourcePort: 0, destination: event.destination, destinationPort: 0,
                    wireLength: wireLength, timestamp: timestamp)
            case .ipv6:
                ipv6.count(
                    source: event.source, sourcePort: 0, destination: event.destination, destinationPort: 0,
                    wireLength: wireLength, timestamp: timestamp)
            case .tcp:
                tcp.count(
                    source: event.source, sourcePort: event.sourcePort, destination: event.destination,
                    destinationPort: event.destinationPort, wireLength: wireLength, timestamp: timestamp,
                    tcpFlags: event.tcpFlags)
            case .udp:
                udp.count(
                    source: event.source, sourcePort: event.sourcePort, destination: event.destination,
                    destinationPort: event.destinationPort, wireLength: wireLength, timestamp: timestamp)
            }
        }
        if let flow = summary.flow {
            flows.count(
                flow, vlan: summary.vlan, wireLength: wireLength, timestamp: timestamp, tcpFlags: summary.tcpFlags,
                workstream: workstream)
        }
    }

    static func index(_ network: NetworkProtocol) -> Int { NetworkProtocol.allCases.firstIndex(of: network)! }
    static func index(_ transport: TransportProtocol) -> Int { TransportProtocol.allCases.firstIndex(of: transport)! }
}
