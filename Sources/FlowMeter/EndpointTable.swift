// EndpointTable: tshark's endpoint statistics (`-z endpoints,ip|ipv6|tcp|udp`) — per address (and
// port), the frames and bytes it sent and received — derived from a conversation table at the end
// of a replay. tshark feeds both tables from the same tap, one frame adding to its source's sent
// and its destination's received counts; summing each conversation row into its two endpoints
// gives the same (a frame from an address to itself counts as sent and received, as there).

import PacketWire

/// One endpoint: an address, or an address and port, with what it sent and received.
public struct EndpointRow: Sendable, Equatable {
    /// The address.
    public var address: IPAddress
    /// The port (0 for ip/ipv6 tables).
    public var port: UInt16
    /// Frames it sent.
    public var framesSent = 0
    /// Bytes (wire lengths) it sent.
    public var bytesSent = 0
    /// Frames it received.
    public var framesReceived = 0
    /// Bytes it received.
    public var bytesReceived = 0

    /// Frames sent and received.
    public var frames: Int { framesSent + framesReceived }
    /// Bytes sent and received.
    public var bytes: Int { bytesSent + bytesReceived }
}

enum EndpointTable {
    private struct Key: Hashable {
        var address: IPAddress
        var port: UInt16
    }

    /// The endpoints of `rows`, ordered by address, then port.
    static func endpoints(of rows: some Sequence<ConversationRow>) -> [EndpointRow] {
        var table: [Key: EndpointRow] = [:]
        func add(_ address: IPAddress, _ port: UInt16, sent: (Int, Int), received: (Int, Int)) {
            let key = Key(address: address, port: port)
            var row = table[key] ?? EndpointRow(address: address, port: port)
            row.framesSent += sent.0
            row.bytesSent += sent.1
            row.framesReceived += received.0
            row.bytesReceived += received.1
            table[key] = row
        }
        for row in rows {
            let fromA = (row.framesAToB, row.bytesAToB)
            let fromB = (row.framesBToA, row.bytesBToA)
            add(row.addressA, row.portA, sent: fromA, received: fromB)
            add(row.addressB, row.portB, sent: fromB, received: fromA)
        }
        return table.values.sorted { ($0.address, $0.port) < ($1.address, $1.port) }
    }
}
