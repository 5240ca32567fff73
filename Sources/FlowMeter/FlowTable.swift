// FlowTable: flow records as NetFlow and argus users expect them — 5-tuple (the direction of
// the first packet), VLAN, first and last timestamps, packets and bytes each way, TCP flags seen,
// and the workstream that handled the flow. One table per workstream; merged at the end.

import PacketWire

/// One flow.
public struct FlowRecord: Sendable, Equatable {
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

    /// All packets.
    public var packets: Int { packetsForward + packetsReverse }
    /// All bytes.
    public var bytes: Int { bytesForward + bytesReverse }
}

struct FlowTableKey: Hashable {
    var flow: FlowKey
    var vlan: UInt16?
}

struct FlowTable {
    private(set) var records: [FlowRecord] = []
    private var index: [FlowTableKey: Int] = [:]

    mutating func count(
        _ flow: FlowKey, vlan: UInt16?, wireLength: Int, timestamp: UInt64, tcpFlags: UInt8, workstream: Int
    ) {
        let key = FlowTableKey(flow: flow.canonical, vlan: vlan)
        if let at = index[key] {
            if records[at].key == flow {
                records[at].packetsForward += 1
                records[at].bytesForward += wireLength
            } else {
                records[at].packetsReverse += 1
                records[at].bytesReverse += wireLength
            }
            records[at].lastTimestamp = max(records[at].lastTimestamp, timestamp)
            records[at].tcpFlags |= tcpFlags
        } else {
            index[key] = records.count
            records.append(
                FlowRecord(
                    key: flow, vlan: vlan, firstTimestamp: timestamp, lastTimestamp: timestamp, packetsForward: 1,
                    bytesForward: wireLength, tcpFlags: tcpFlags, workstream: workstream))
        }
    }
}
