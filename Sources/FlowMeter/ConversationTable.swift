// ConversationTable: tshark's conversation statistics (`-z conv,ip|ipv6|tcp|udp`), counted
// exactly as ../shared/oracle/README.md describes: rows keyed by the unordered endpoint pair
// (address, or address and port), A being the source of the first event seen for the row, bytes
// being frames' wire lengths. A TCP 4-tuple reused after a FIN or RST, opened again by a pure
// SYN, starts a new row (tshark's new stream). One table belongs to one workstream; tables are
// merged when the replay ends.

import PacketWire

/// One conversation row.
public struct ConversationRow: Sendable, Equatable {
    /// Endpoint A: the source of the first frame.
    public var addressA: IPAddress
    /// A's port (0 for ip/ipv6 tables).
    public var portA: UInt16
    /// Endpoint B.
    public var addressB: IPAddress
    /// B's port.
    public var portB: UInt16
    /// Frames and bytes from A to B.
    public var framesAToB = 0
    /// Bytes from A to B (wire lengths).
    public var bytesAToB = 0
    /// Frames from B to A.
    public var framesBToA = 0
    /// Bytes from B to A.
    public var bytesBToA = 0
    /// Capture time of the first frame.
    public var firstTimestamp: UInt64
    /// A TCP FIN or RST was seen: a later pure SYN on the same 4-tuple opens a new row.
    var closed = false

    /// All frames.
    public var frames: Int { framesAToB + framesBToA }
    /// All bytes.
    public var bytes: Int { bytesAToB + bytesBToA }
}

struct ConversationKey: Hashable {
    var low: IPAddress
    var lowPort: UInt16
    var high: IPAddress
    var highPort: UInt16

    init(_ source: IPAddress, _ sourcePort: UInt16, _ destination: IPAddress, _ destinationPort: UInt16) {
        if (source, sourcePort) <= (destination, destinationPort) {
            (low, lowPort, high, highPort) = (source, sourcePort, destination, destinationPort)
        } else {
            (low, lowPort, high, highPort) = (destination, destinationPort, source, sourcePort)
        }
    }
}

/// The rows of one table, in order of first appearance.
struct ConversationTable {
    private(set) var rows: [ConversationRow] = []
    private var current: [ConversationKey: Int] = [:]

    mutating func count(
        source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16, wireLength: Int,
        timestamp: UInt64, tcpFlags: UInt8? = nil
    ) {
        let key = ConversationKey(source, sourcePort, destination, destinationPort)
        var index = current[key]
        if let existing = index, let flags = tcpFlags, flags & 0x12 == 0x02, rows[existing].closed {
            index = nil  // a new stream on a reused 4-tuple
        }
        if index == nil {
            rows.append(
                ConversationRow(
                    addressA: source, portA: sourcePort, addressB: destination, portB: destinationPort,
                    firstTimestamp: timestamp))
            index = rows.count - 1
            current[key] = index
        }
        let row = index!
        if rows[row].addressA == source && rows[row].portA == sourcePort {
            rows[row].framesAToB += 1
            rows[row].bytesAToB += wireLength
        } else {
            rows[row].framesBToA += 1
            rows[row].bytesBToA += wireLength
        }
        if let flags = tcpFlags, flags & 0x05 != 0 { rows[row].closed = true }
    }

    /// Merges tables from several workstreams. A row split across workstreams (only inner headers
    /// of tunnels can be) keeps the orientation of its earliest part.
    static func merge(_ tables: [ConversationTable]) -> [ConversationRow] {
        var merged: [ConversationKey: [ConversationRow]] = [:]
        var order: [ConversationKey] = []
        for table in tables {
            for row in table.rows {
                let key = ConversationKey(row.addressA, row.portA, row.addressB, row.portB)
                if merged[key] == nil { order.append(key) }
                merged[key, default: []].append(row)
            }
        }
        var result: [ConversationRow] = []
        for key in order {
            let parts = merged[key]!
            // Rows of one key from one table are separate streams; from several tables, one stream.
            if parts.count == 1 || tables.count == 1 {
                result += parts
                continue
            }
            var combined = parts.min { $0.firstTimestamp < $1.firstTimestamp }!
            combined.framesAToB = 0
            combined.bytesAToB = 0
            combined.framesBToA = 0
            combined.bytesBToA = 0
            for part in parts {
                if part.addressA == combined.addressA && part.portA == combined.portA {
                    combined.framesAToB += part.framesAToB
                    combined.bytesAToB += part.bytesAToB
                    combined.framesBToA += part.framesBToA
                    combined.bytesBToA += part.bytesBToA
                } else {
                    combined.framesAToB += part.framesBToA
                    combined.bytesAToB += part.bytesBToA
                    combined.framesBToA += part.framesAToB
                    combined.bytesBToA += part.bytesAToB
                }
            }
            result.append(combined)
        }
        return result.sorted {
            ($0.addressA, $0.portA, $0.addressB, $0.portB, $0.firstTimestamp)
                < ($1.addressA, $1.portA, $1.addressB, $1.portB, $1.firstTimestamp)
        }
    }
}
