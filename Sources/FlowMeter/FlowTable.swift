// FlowTable: flow records as NetFlow and argus users expect them — 5-tuple (the direction of
// the first packet), VLAN, first and last timestamps, packets and bytes each way, TCP flags seen,
// and the workstream that handled the flow. One table per workstream; merged at the end.

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
    /// TCP flags seen in either direction, OR-ed.
    public var tcpFlags: UInt8 = 0
    /// The workstream that handled it.
    public var workstream: Int
    /// The conversation rows this flow's packets count in (its outer IP and TCP/UDP rows), so
    /// later packets skip those lookups; -1 when not known.
    var networkRow: Int32 = -1
    var transportRow: Int32 = -1

    /// Equal when every public field is.
    public static func == (lhs: FlowRecord, rhs: FlowRecord) -> Bool {
        (lhs.key, lhs.vlan, lhs.firstTimestamp, lhs.lastTimestamp, lhs.packetsForward, lhs.bytesForward)
            == (rhs.key, rhs.vlan, rhs.firstTimestamp, rhs.lastTimestamp, rhs.packetsForward, rhs.bytesForward)
            && (lhs.packetsReverse, lhs.bytesReverse, lhs.tcpFlags, lhs.workstream)
                == (rhs.packetsReverse, rhs.bytesReverse, rhs.tcpFlags, rhs.workstream)
    }

    /// Counts a packet (one access to the record where it is stored).
    @inline(__always)
    mutating func add(forward: Bool, wireLength: Int, timestamp: UInt64, tcpFlags: UInt8) {
        if forward {
            packetsForward += 1
            bytesForward += wireLength
        } else {
            packetsReverse += 1
            bytesReverse += wireLength
        }
        lastTimestamp = max(lastTimestamp, timestamp)
        self.tcpFlags |= tcpFlags
    }

    /// All packets.
    public var packets: Int { packetsForward + packetsReverse }
    /// All bytes.
    public var bytes: Int { bytesForward + bytesReverse }
}

struct FlowTableKey: Hashable {
    var flow: FlowKey
    var vlan: UInt16?

    var hash: UInt64 {
        mixHash(
            flow.source.high ^ UInt64(flow.sourcePort) << 48, flow.source.low,
            flow.destination.high ^ UInt64(flow.destinationPort) << 48, flow.destination.low,
            UInt64(flow.ipProtocol) | UInt64(vlan ?? 0xFFFF) << 8 | (flow.source.isIPv6 ? 1 << 32 : 0))
    }
}

struct FlowTable {
    var records = TableArray<FlowRecord>()
    private var index = RowIndex()

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

    /// Counts a packet of `flow` (`hash` from `FlowTable.hash`); returns its record's row.
    @discardableResult
    mutating func count(
        _ flow: FlowKey, vlan: UInt16?, hash: UInt64, wireLength: Int, timestamp: UInt64, tcpFlags: UInt8,
        workstream: Int
    ) -> Int {
        let reversed = flow.reversed
        if let at = index.find(
            hash, { records[$0].vlan == vlan && (records[$0].key == flow || records[$0].key == reversed) })
        {
            let forward = records[at].key == flow
            records[at].add(forward: forward, wireLength: wireLength, timestamp: timestamp, tcpFlags: tcpFlags)
            return at
        } else {
            index.insert(hash, row: records.count)
            records.append(
                FlowRecord(
                    key: flow, vlan: vlan, firstTimestamp: timestamp, lastTimestamp: timestamp, packetsForward: 1,
                    bytesForward: wireLength, tcpFlags: tcpFlags, workstream: workstream))
            return records.count - 1
        }
    }
}
