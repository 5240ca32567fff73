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
    /// The endpoints of `rows`, ordered by address, then port.
    static func endpoints(of rows: some Collection<ConversationRow>) -> [EndpointRow] {
        unordered(rows).sorted { ($0.address, $0.port) < ($1.address, $1.port) }
    }

    /// The endpoints of `rows`, in order of first appearance (found through a RowIndex: with a
    /// Dictionary keyed by address and port, 100k conversations took 0.1 s). With `partitions`
    /// above 1, only the endpoints whose hash falls in `partition`: the partitions of one table
    /// are disjoint and together make it, so threads can each build one.
    static func unordered(
        _ rows: some Collection<ConversationRow>, partition: Int = 0, of partitions: Int = 1
    ) -> [EndpointRow] {
        var endpoints: [EndpointRow] = []
        endpoints.reserveCapacity(rows.count * 2 / partitions)
        var index = RowIndex(capacity: rows.count * 2 / partitions)
        func add(_ address: IPAddress, _ port: UInt16, sent: (Int, Int), received: (Int, Int)) {
            let hash = mixHash(address.high, address.low, UInt64(port), address.isIPv6 ? 1 : 0, 0)
            // The index places by the hash's low bits; partitions go by its high ones.
            guard partitions == 1 || Int(truncatingIfNeeded: hash >> 40) % partitions == partition else { return }
            var at = index.find(hash) { endpoints[$0].address == address && endpoints[$0].port == port } ?? -1
            if at < 0 {
                at = endpoints.count
                endpoints.append(EndpointRow(address: address, port: port))
                index.insert(hash, row: at)
            }
            endpoints[at].framesSent += sent.0
            endpoints[at].bytesSent += sent.1
            endpoints[at].framesReceived += received.0
            endpoints[at].bytesReceived += received.1
        }
        for row in rows {
            let fromA = (row.framesAToB, row.bytesAToB)
            let fromB = (row.framesBToA, row.bytesBToA)
            add(row.addressA, row.portA, sent: fromA, received: fromB)
            add(row.addressB, row.portB, sent: fromB, received: fromA)
        }
        return endpoints
    }

    /// The endpoints of each table, unordered, in two halves built at once (`inParallel`): a
    /// table's cost is its random index inserts, and each half has half of them. The halves are
    /// handed back apart, as joining them would copy them all again. (The report's endpoints for
    /// the 1M-packet benchmark capture: 20–33 ms on one thread, 11–18 ms in halves.)
    static func unorderedInHalves(_ tables: [TableRows<ConversationRow>]) -> [[[EndpointRow]]] {
        let halves = inParallel(2) { half in tables.map { unordered($0, partition: half, of: 2) } }
        return tables.indices.map { table in halves.map { $0[table] } }
    }
}
