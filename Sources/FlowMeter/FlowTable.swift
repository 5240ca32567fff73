// FlowTable: flow records as NetFlow and argus users expect them — 5-tuple (the direction of
// the first packet), VLAN, first and last timestamps, packets and bytes each way, TCP flags seen,
// and the workstream that handled the flow. One table per workstream; merged at the end.
//
// With timeouts (`FlowTimeouts`, NetFlow's idle and active timeouts, on capture time), a packet that
// finds its flow idle too long, or the flow's record older than the active timeout, closes that
// record (kept in `finished`) and starts the flow's next record, as its first packet: a long flow
// gives a record per active period, a flow that pauses a record per burst. With or without
// timeouts, a TCP connection that ended (FIN or RST) and is opened again on the same ports (a pure
// SYN) starts a new record, as tshark starts a new stream. A live capture that
// exports as it goes also sweeps the table (`sweep`): records whose timeout has passed by the
// clock end without waiting for a packet and leave the table (the last record takes the row), so
// it holds the open flows only; the flow's next packet starts its next record.

import PacketWire

/// One flow.
public struct FlowRecord: Sendable, Equatable, BitwiseCopyable {
    /// The flow as its first packet went (source = initiator).
    public var key: FlowKey
    /// The outermost VLAN id, if tagged.
    public var vlan: UInt16?
    /// First packet's capture time (ns since the epoch).
    public var firstTimestamp: UInt64
    /// Last packet's capture time.
    public var lastTimestamp: UInt64
    /// Packets from the initiator.
    public var packetsForward = 0
    /// Bytes (wire lengths) from the initiator.
    public var bytesForward = 0
    /// Packets towards the initiator.
    public var packetsReverse = 0
    /// Bytes towards the initiator.
    public var bytesReverse = 0
    /// TCP flags the initiator sent, OR-ed.
    public var tcpFlagsForward: UInt8 = 0
    /// TCP flags sent towards the initiator, OR-ed.
    public var tcpFlagsReverse: UInt8 = 0
    /// For an ICMP or ICMPv6 flow, the type (high byte) and code (low byte) of the record's first
    /// message (NetFlow shows them as the destination port, type × 256 + code).
    public var icmpTypeCode: UInt16?
    /// Which timeout ended the record, if one did.
    public var expiry: FlowExpiry = .none
    /// The workstream that handled it.
    public var workstream: Int
    /// The conversation rows this record's packets count in (its IP row and TCP/UDP row, -1 for
    /// none): its packets are counted on the record only, and added to those rows when it is
    /// folded (`TrafficAccounts.fold`). -1 before its first packet is accounted;
    /// `countedDirectly` when its packets are counted in the tables one by one.
    var networkRow: Int32 = -1
    var transportRow: Int32 = -1

    /// `networkRow` of a record whose packets are counted in the conversation tables one by one.
    static let countedDirectly: Int32 = -2
    /// `networkRow` of a record whose rows are still to be found (`transportRow` 0 if its frames
    /// have a TCP or UDP header, else -1).
    static let deferred: Int32 = -3

    /// Equal when every public field is.
    public static func == (lhs: FlowRecord, rhs: FlowRecord) -> Bool {
        (lhs.key, lhs.vlan, lhs.firstTimestamp, lhs.lastTimestamp, lhs.packetsForward, lhs.bytesForward)
            == (rhs.key, rhs.vlan, rhs.firstTimestamp, rhs.lastTimestamp, rhs.packetsForward, rhs.bytesForward)
            && (lhs.packetsReverse, lhs.bytesReverse, lhs.tcpFlagsForward, lhs.tcpFlagsReverse, lhs.expiry)
                == (rhs.packetsReverse, rhs.bytesReverse, rhs.tcpFlagsForward, rhs.tcpFlagsReverse, rhs.expiry)
            && (lhs.workstream, lhs.icmpTypeCode) == (rhs.workstream, rhs.icmpTypeCode)
    }

    /// TCP flags seen in either direction, OR-ed.
    public var tcpFlags: UInt8 { tcpFlagsForward | tcpFlagsReverse }

    /// Which timeout a packet at `timestamp` ends this record by, if any. Timestamps that go
    /// backwards (captures merged or reordered) end none.
    @inline(__always)
    func expiry(at timestamp: UInt64, _ timeouts: FlowTimeouts) -> FlowExpiry {
        if timestamp > lastTimestamp && timestamp - lastTimestamp > timeouts.idleNanoseconds { return .idleTimeout }
        if timestamp > firstTimestamp && timestamp - firstTimestamp > timeouts.activeNanoseconds {
            return .activeTimeout
        }
        return .none
    }

    /// Counts a packet (one access to the record where it is stored).
    @inline(__always)
    mutating func add(forward: Bool, wireLength: Int, timestamp: UInt64, tcpFlags: UInt8) {
        if forward {
            packetsForward += 1
            bytesForward += wireLength
            tcpFlagsForward |= tcpFlags
        } else {
            packetsReverse += 1
            bytesReverse += wireLength
            tcpFlagsReverse |= tcpFlags
        }
        lastTimestamp = max(lastTimestamp, timestamp)
    }

    /// All packets.
    public var packets: Int { packetsForward + packetsReverse }
    /// All bytes.
    public var bytes: Int { bytesForward + bytesReverse }
}

/// What ended a flow record before the capture did.
public enum FlowExpiry: UInt8, Sendable, BitwiseCopyable {
    /// Nothing: the flow was still going when the capture ended.
    case none
    /// The flow was idle longer than the idle timeout; its next packet started a new record.
    case idleTimeout
    /// The record grew older than the active timeout.
    case activeTimeout
    /// Its TCP connection ended (a FIN or RST was seen) and a pure SYN opened a new one on the same
    /// addresses and ports: the new connection has a record of its own, as tshark starts a new
    /// TCP stream (and a row of its own in the conversation table).
    case endOfFlow
    /// A live export's table held more flows than allowed (`LiveFlowExport.maximumFlows`): the
    /// records idle longest were ended early (IPFIX's "lack of resources").
    case tableFull
}

/// When a flow record ends before the capture does (NetFlow's timeouts, on capture time).
public struct FlowTimeouts: Sendable, Equatable {
    /// A flow idle longer than this (ns) starts a new record with its next packet; `.max`: never.
    public var idleNanoseconds: UInt64
    /// A record older than this (ns) ends with the flow's next packet; `.max`: never.
    public var activeNanoseconds: UInt64

    /// Timeouts in seconds; nil leaves that timeout off.
    public init(idle: Double? = nil, active: Double? = nil) {
        func nanoseconds(_ seconds: Double?) -> UInt64 {
            guard let seconds, seconds.isFinite, seconds >= 0 else { return .max }
            return seconds * 1e9 >= Double(UInt64.max) ? .max : UInt64(seconds * 1e9)
        }
        idleNanoseconds = nanoseconds(idle)
        activeNanoseconds = nanoseconds(active)
    }

    /// Whether any timeout is on.
    public var areSet: Bool { idleNanoseconds != .max || activeNanoseconds != .max }
}

struct FlowTableKey: Hashable {
    var flow: FlowKey
    var vlan: UInt16?

    /// The VLAN is left out: records of one 5-tuple on several VLANs share a probe run, so a new
    /// record finds the others (`FlowTable.hasOtherVLAN`).
    var hash: UInt64 {
        mixHash(
            flow.source.high ^ UInt64(flow.sourcePort) << 48, flow.source.low,
            flow.destination.high ^ UInt64(flow.destinationPort) << 48, flow.destination.low,
            UInt64(flow.ipProtocol) | (flow.source.isIPv6 ? 1 << 32 : 0))
    }
}

struct FlowTable {
    /// Whether any timeout is set (`countWithTimeouts` then, not `count`). Read per packet: first,
    /// beside the records and the index, on the cache line those already bring.
    let expires: Bool
    var records = TableArray<FlowRecord>()
    private var index = RowIndex()
    /// Records a packet ended (a timeout, or a new TCP connection on the ports of a closed one),
    /// until a sweep or the result takes them.
    var finished = TableArray<FlowRecord>()
    /// Where the next sweep starts looking (`sweep`'s slices).
    private var sweepCursor = 0
    let timeouts: FlowTimeouts

    init(timeouts: FlowTimeouts = FlowTimeouts()) {
        self.timeouts = timeouts
        expires = timeouts.areSet
    }

    /// The index hash of a flow (either direction).
    static func hash(_ flow: FlowKey, vlan: UInt16?) -> UInt64 { FlowTableKey(flow: flow.canonical, vlan: vlan).hash }

    /// Starts loading the index slot a lookup of `hash` reads first.
    @inline(__always)
    func prefetchSlot(_ hash: UInt64) { index.prefetch(hash) }

    /// The row a lookup of `hash` will most likely find (its slot cached by now); nil if none.
    @inline(__always)
    func likelyRow(_ hash: UInt64) -> Int? { index.candidate(hash) }

    /// Starts loading a record.
    @inline(__always)
    func prefetchRecord(_ row: Int) {
        records.withUnsafeBufferPointer { prefetch($0, row) }
    }

    /// The row of `flow`'s record (either direction, same VLAN), if it has one.
    @inline(__always)
    private func row(of flow: FlowKey, vlan: UInt16?, hash: UInt64) -> Int? {
        let reversed = flow.reversed
        return index.find(
            hash, { records[$0].vlan == vlan && (records[$0].key == flow || records[$0].key == reversed) })
    }

    /// Whether a record of `flow` (either direction) on another VLAN than `vlan` is in the table.
    func hasOtherVLAN(_ flow: FlowKey, vlan: UInt16?, hash: UInt64) -> Bool {
        let reversed = flow.reversed
        return index.find(
            hash, { records[$0].vlan != vlan && (records[$0].key == flow || records[$0].key == reversed) }) != nil
    }

    /// `count` for a table with timeouts: a packet that ends its flow's record keeps that record
    /// as finished and starts the flow's next record as its first packet (the conversation-row
    /// links stay: they name the flow's conversations, not the record). A function of its own, so
    /// `count` stays as small as before and the compiler still inlines it into the accounting:
    /// with the check inside, it did not, and every replay took 4–6% longer.
    @inline(never)
    mutating func countWithTimeouts(
        _ flow: FlowKey, vlan: UInt16?, hash: UInt64, wireLength: Int, timestamp: UInt64, tcpFlags: UInt8,
        workstream: Int, icmpTypeCode: UInt16? = nil
    ) -> Int {
        guard let row = row(of: flow, vlan: vlan, hash: hash) else {
            return count(
                flow, vlan: vlan, hash: hash, wireLength: wireLength, timestamp: timestamp, tcpFlags: tcpFlags,
                workstream: workstream, icmpTypeCode: icmpTypeCode)
        }
        var expiry = records[row].expiry(at: timestamp, timeouts)
        if expiry == .none && Self.reopens(records[row], tcpFlags: tcpFlags) { expiry = .endOfFlow }
        guard expiry != .none else {
            let forward = records[row].key == flow
            records[row].add(forward: forward, wireLength: wireLength, timestamp: timestamp, tcpFlags: tcpFlags)
            return row
        }
        restart(
            row, endedBy: expiry, flow, wireLength: wireLength, timestamp: timestamp, tcpFlags: tcpFlags,
            icmpTypeCode: icmpTypeCode)
        return row
    }

    /// Whether a packet with `tcpFlags` opens a new TCP connection on `record`'s ports: a pure SYN
    /// after the record saw a FIN or RST (tshark's rule for a new stream).
    @inline(__always)
    static func reopens(_ record: FlowRecord, tcpFlags: UInt8) -> Bool {
        tcpFlags & 0x12 == 0x02 && record.tcpFlags & 0x05 != 0
    }

    /// Ends `row`'s record (kept in `finished`) and starts the flow's next record there, with this
    /// packet as its first (its sender the new initiator). The conversation-row links stay: they
    /// name the flow's conversations, not the record.
    @inline(never)
    private mutating func restart(
        _ row: Int, endedBy expiry: FlowExpiry, _ flow: FlowKey, wireLength: Int, timestamp: UInt64, tcpFlags: UInt8,
        icmpTypeCode: UInt16?
    ) {
        finished.append(records[row])
        finished[finished.count - 1].expiry = expiry
        records[row].key = flow
        (records[row].firstTimestamp, records[row].lastTimestamp) = (timestamp, timestamp)
        (records[row].packetsForward, records[row].bytesForward) = (1, wireLength)
        (records[row].packetsReverse, records[row].bytesReverse) = (0, 0)
        (records[row].tcpFlagsForward, records[row].tcpFlagsReverse) = (tcpFlags, 0)
        records[row].icmpTypeCode = icmpTypeCode
    }

    /// Ends, as a packet at `now` would, every record whose flow has been idle longer than the
    /// idle timeout or that is older than the active timeout, and moves those and the records
    /// packets ended (`finished`) to `ended`. A record ended here leaves the table: the last
    /// record moves into its row. Without timeouts no record expires, but the finished ones still
    /// leave and a full table is still trimmed.
    ///
    /// A sweep looks at `slice` records at most, from where the last one stopped (`sweepCursor`),
    /// so that a large table is swept a slice at a time: the thread that owns it pauses for a
    /// slice, not for the whole table. When a sweep reaches the table's end (a pass), and more than
    /// `limit` records remain, the records idle longest end too (`tableFull`) until `limit` remain.
    ///
    /// Row numbers change: call it between handler calls, never while a burst's pipeline holds
    /// rows it looked up.
    mutating func sweep(
        now: UInt64, into ended: inout [FlowRecord], keepingAtMost limit: Int = .max, slice: Int = .max
    ) {
        for record in finished { ended.append(record) }
        finished = TableArray()
        var row = min(sweepCursor, records.count)
        // Without timeouts nothing expires: the slice is passed over, so a pass takes as many
        // sweeps as with them.
        var looked = 0
        if !expires { (row, looked) = (records.count - row <= slice ? records.count : row + slice, slice) }
        while row < records.count && looked < slice {
            looked += 1
            let expiry = records[row].expiry(at: now, timeouts)
            guard expiry != .none else {
                row += 1
                continue
            }
            var record = records[row]
            record.expiry = expiry
            ended.append(record)
            remove(row)
        }
        guard row >= records.count else {
            sweepCursor = row
            return
        }
        sweepCursor = 0
        guard records.count > max(limit, 0) else { return }
        var idlest = records.indices.map { (last: records[$0].lastTimestamp, row: $0) }
        idlest.sort { ($0.last, $0.row) < ($1.last, $1.row) }
        // Highest rows first: a removal moves the last record, never one still to be removed.
        for row in idlest.prefix(records.count - max(limit, 0)).map(\.row).sorted(by: >) {
            var record = records[row]
            record.expiry = .tableFull
            ended.append(record)
            remove(row)
        }
    }

    /// The `count` records with the most bytes, most first, found in one pass over the table.
    func largest(_ count: Int) -> [FlowRecord] {
        var top: [FlowRecord] = []
        guard count > 0 else { return top }
        for record in records where top.count < count || record.bytes > top[top.count - 1].bytes {
            if top.count == count { top.removeLast() }
            top.insert(record, at: top.firstIndex { $0.bytes < record.bytes } ?? top.count)
        }
        return top
    }

    /// Takes `row`'s record out of the table, the last record moving into its place.
    private mutating func remove(_ row: Int) {
        let last = records.count - 1
        index.remove(Self.hash(records[row].key, vlan: records[row].vlan), row: row)
        if row != last {
            let moved = records[last]
            index.replace(Self.hash(moved.key, vlan: moved.vlan), old: last, new: row)
            records[row] = moved
        }
        records.removeLast()
    }

    /// Counts a packet of `flow` (`hash` from `FlowTable.hash`); returns its record's row.
    @discardableResult
    mutating func count(
        _ flow: FlowKey, vlan: UInt16?, hash: UInt64, wireLength: Int, timestamp: UInt64, tcpFlags: UInt8,
        workstream: Int, icmpTypeCode: UInt16? = nil
    ) -> Int {
        if let at = row(of: flow, vlan: vlan, hash: hash) {
            let reopened = records.update(at) { record in
                if Self.reopens(record, tcpFlags: tcpFlags) { return true }
                record.add(
                    forward: record.key == flow, wireLength: wireLength, timestamp: timestamp, tcpFlags: tcpFlags)
                return false
            }
            if reopened {
                restart(
                    at, endedBy: .endOfFlow, flow, wireLength: wireLength, timestamp: timestamp, tcpFlags: tcpFlags,
                    icmpTypeCode: icmpTypeCode)
            }
            return at
        } else {
            index.insert(hash, row: records.count)
            records.append(
                FlowRecord(
                    key: flow, vlan: vlan, firstTimestamp: timestamp, lastTimestamp: timestamp, packetsForward: 1,
                    bytesForward: wireLength, tcpFlagsForward: tcpFlags, icmpTypeCode: icmpTypeCode,
                    workstream: workstream))
            return records.count - 1
        }
    }
}
