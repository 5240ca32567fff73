// ConversationTable: tshark's conversation statistics (`-z conv,ip|ipv6|tcp|udp`), counted
// exactly as ../shared/oracle/README.md describes: rows keyed by the unordered endpoint pair
// (address, or address and port), A being the source of the first event seen for the row, bytes
// being frames' wire lengths. A TCP 4-tuple reused after a FIN or RST, opened again by a pure
// SYN, starts a new row (tshark's new stream). One table belongs to one workstream; tables are
// merged when the replay ends.

import PacketWire

/// One conversation row.
public struct ConversationRow: Sendable, Equatable, BitwiseCopyable {
    /// Endpoint A: the source of the first frame.
    public var addressA: IPAddress
    /// A's port (0 for ip/ipv6 tables).
    public var portA: UInt16
    /// A TCP FIN or RST was seen: a later pure SYN on the same 4-tuple opens a new row. (Declared
    /// here, in the padding after A's address and port, the row takes 88 bytes rather than 96.)
    var closed = false
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

    /// All frames.
    public var frames: Int { framesAToB + framesBToA }
    /// All bytes.
    public var bytes: Int { bytesAToB + bytesBToA }

    /// Whether this is the row of the endpoints `first` and `second`, in either direction.
    @inline(__always)
    func joins(_ first: IPAddress, _ firstPort: UInt16, _ second: IPAddress, _ secondPort: UInt16) -> Bool {
        (addressA == first && portA == firstPort && addressB == second && portB == secondPort)
            || (addressA == second && portA == secondPort && addressB == first && portB == firstPort)
    }

    /// Whether `other` is a row of the same endpoints.
    func joins(_ other: ConversationRow) -> Bool { joins(other.addressA, other.portA, other.addressB, other.portB) }

    /// Adds a frame from `source` in its direction; a FIN or RST closes the row's TCP stream.
    @inline(__always)
    mutating func add(source: IPAddress, sourcePort: UInt16, wireLength: Int, tcpFlags: UInt8?) {
        add(source: source, sourcePort: sourcePort, frames: 1, bytes: wireLength)
        if let flags = tcpFlags, flags & 0x05 != 0 { closed = true }
    }

    /// Adds `frames` frames of `bytes` bytes from `source` in their direction.
    @inline(__always)
    mutating func add(source: IPAddress, sourcePort: UInt16, frames: Int, bytes: Int) {
        if addressA == source && portA == sourcePort {
            framesAToB += frames
            bytesAToB += bytes
        } else {
            framesBToA += frames
            bytesBToA += bytes
        }
    }
}

/// A row's endpoints in canonical order, for its index hash (the rows themselves are compared
/// with `joins`: a table keeps no separate keys, a 48-byte key per row that every lookup read).
struct ConversationKey {
    var hash: UInt64 {
        mixHash(
            low.high ^ UInt64(lowPort) << 48, low.low, high.high ^ UInt64(highPort) << 48, high.low,
            (low.isIPv6 ? 1 : 0) | (high.isIPv6 ? 2 : 0))
    }

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
    private(set) var rows = TableArray<ConversationRow>()
    private var index = RowIndex()
    /// Some row counted an event of addresses other than its frame's flow (see `merge`).
    var countsForeignEvents = false
    /// The most rows the table keeps (a live capture's bound on memory): an event of a new
    /// conversation beyond them is only counted, in `untrackedFrames`.
    var maximumRows = Int.max
    /// Events of conversations the table had no room for.
    private(set) var untrackedFrames = 0

    /// Starts loading a row.
    @inline(__always)
    func prefetch(_ row: Int) { rows.withUnsafeBufferPointer { FlowMeter.prefetch($0, row) } }

    /// Starts loading the index slot a lookup of this event's conversation reads first.
    @inline(__always)
    func prefetchSlot(_ event: ConversationEvent) {
        index.prefetch(
            ConversationKey(event.source, event.sourcePort, event.destination, event.destinationPort).hash)
    }

    /// Starts loading the index slot a lookup of this conversation reads first.
    @inline(__always)
    func prefetchSlot(source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16) {
        index.prefetch(ConversationKey(source, sourcePort, destination, destinationPort).hash)
    }

    /// Makes room for `additional` more rows without growing the index.
    mutating func reserve(_ additional: Int) { index.reserve(additional) }

    /// Counts an event; returns its row, or -1 when the table is full and has no row for it.
    @discardableResult
    mutating func count(
        source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16, wireLength: Int,
        timestamp: UInt64, tcpFlags: UInt8? = nil
    ) -> Int {
        let row = row(
            source: source, sourcePort: sourcePort, destination: destination, destinationPort: destinationPort,
            timestamp: timestamp, tcpFlags: tcpFlags)
        guard row >= 0 else {
            untrackedFrames += 1
            return -1
        }
        rows[row].add(source: source, sourcePort: sourcePort, wireLength: wireLength, tcpFlags: tcpFlags)
        return row
    }

    /// The row an event is counted in, found or started (with nothing counted yet: the event is
    /// its first frame if started, `source` becoming A); -1 when the table is full and has no row
    /// for it. A pure SYN on a closed TCP row starts a new row.
    mutating func row(
        source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16, timestamp: UInt64,
        tcpFlags: UInt8? = nil
    ) -> Int {
        let key = ConversationKey(source, sourcePort, destination, destinationPort)
        let hash = key.hash
        var found = index.find(hash) { rows[$0].joins(source, sourcePort, destination, destinationPort) }
        var reused: Int?
        if let existing = found, let flags = tcpFlags, flags & 0x12 == 0x02, rows[existing].closed {
            reused = existing  // a new stream on a reused 4-tuple
            found = nil
        }
        if let found { return found }
        guard rows.count < maximumRows else { return -1 }
        let row = rows.count
        rows.append(
            ConversationRow(
                addressA: source, portA: sourcePort, addressB: destination, portB: destinationPort,
                firstTimestamp: timestamp))
        if let reused { index.replace(hash, old: reused, new: row) } else { index.insert(hash, row: row) }
        return row
    }

    /// Whether a FIN or RST closed the row's TCP stream (a pure SYN then starts a new row).
    @inline(__always)
    func isClosed(_ row: Int) -> Bool { rows[row].closed }

    /// Closes the row's TCP stream (a FIN or RST was seen).
    @inline(__always)
    mutating func close(_ row: Int) { rows[row].closed = true }

    /// Adds frames counted elsewhere (a flow record's) to a row: `frames` and `bytes` sent by
    /// `source`, `framesBack` and `bytesBack` by `destination`.
    mutating func add(
        to row: Int, source: IPAddress, sourcePort: UInt16, frames: Int, bytes: Int, destination: IPAddress,
        destinationPort: UInt16, framesBack: Int, bytesBack: Int
    ) {
        rows[row].add(source: source, sourcePort: sourcePort, frames: frames, bytes: bytes)
        rows[row].add(source: destination, sourcePort: destinationPort, frames: framesBack, bytes: bytesBack)
    }

    /// Merges tables from several workstreams: their rows table after table, each table's in order
    /// of first appearance (`sortedAsTshark` orders them for display). A row split across
    /// workstreams keeps the orientation of its earliest part, in the place of the first part
    /// merged; rows of one key within one table are separate TCP streams and stay apart.
    ///
    /// When frames were placed by their flow's addresses (`placedByAddresses`: flow or CPU
    /// ordering by the address hash), a row of the frame's own addresses is counted on one
    /// workstream only, so unless some table counted a foreign event (a tunnel's other header) the
    /// merge is a concatenation. Otherwise it is hash-based (RowIndex). It sorts nothing.
    static func merge(_ tables: [ConversationTable], placedByAddresses: Bool) -> TableRows<ConversationRow> {
        if placedByAddresses && !tables.contains(where: \.countsForeignEvents) {
            return TableRows(parts: tables.map(\.rows))
        }
        let total = tables.reduce(0) { $0 + $1.rows.count }
        var result = TableArray<ConversationRow>()
        // Where each result row came from, to compare rows without copying them; a key seen again
        // in another table is a row split across workstreams, combined into the first one's place.
        var origins: [(table: Int32, index: Int32)] = []
        origins.reserveCapacity(total)
        var seen = RowIndex(capacity: total)
        var splitParts: [Int: [ConversationRow]] = [:]
        for (number, table) in tables.enumerated() {
            for (index, row) in table.rows.enumerated() {
                let hash = ConversationKey(row.addressA, row.portA, row.addressB, row.portB).hash
                let found = seen.find(hash) {
                    let origin = origins[$0]
                    return Int(origin.table) != number && tables[Int(origin.table)].rows[Int(origin.index)].joins(row)
                }
                if let at = found {
                    splitParts[at, default: []].append(row)
                } else {
                    seen.insert(hash, row: result.count)
                    origins.append((Int32(number), Int32(index)))
                    result.append(row)
                }
            }
        }
        for (at, parts) in splitParts { result[at] = combine([result[at]] + parts) }
        return TableRows(parts: [result])
    }

    /// `rows` in tshark's order: by address A, port A, address B, port B, then first frame.
    static func sortedAsTshark(_ rows: some Sequence<ConversationRow>) -> [ConversationRow] {
        rows.sorted {
            ($0.addressA, $0.portA, $0.addressB, $0.portB, $0.firstTimestamp)
                < ($1.addressA, $1.portA, $1.addressB, $1.portB, $1.firstTimestamp)
        }
    }

    private static func combine(_ parts: [ConversationRow]) -> ConversationRow {
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
        return combined
    }
}
