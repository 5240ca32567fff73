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
    /// Frame counts per network × transport, flattened (network-major).
    var layers = [Int](repeating: 0, count: NetworkProtocol.allCases.count * Self.transportKinds)
    var ipv4 = ConversationTable()
    var ipv6 = ConversationTable()
    var tcp = ConversationTable()
    var udp = ConversationTable()
    var flows: FlowTable
    /// Frames of link types this library does not parse, by link type.
    var unsupportedLinkTypes: [UInt32: Int] = [:]

    /// Accounts whose flow records end by `flowTimeouts` and whose conversation tables keep at most
    /// `maximumConversations` rows each.
    init(flowTimeouts: FlowTimeouts = FlowTimeouts(), maximumConversations: Int = .max) {
        flows = FlowTable(timeouts: flowTimeouts)
        for kind in ConversationKind.allCases { self[keyPath: Self.table(kind)].maximumRows = maximumConversations }
    }

    /// The conversation table of one kind.
    static func table(_ kind: ConversationKind) -> WritableKeyPath<TrafficAccounts, ConversationTable> {
        switch kind {
        case .ip: \.ipv4
        case .ipv6: \.ipv6
        case .tcp: \.tcp
        case .udp: \.udp
        }
    }

    mutating func countFrame(wireLength: Int, capturedLength: Int, timestamp: UInt64) {
        frames += 1
        wireBytes += wireLength
        capturedBytes += capturedLength
        firstTimestamp = min(firstTimestamp, timestamp)
        lastTimestamp = max(lastTimestamp, timestamp)
    }

    mutating func countLayers(_ network: NetworkProtocol, _ transport: TransportProtocol) {
        layers[Self.index(network) * Self.transportKinds + Self.index(transport)] += 1
    }

    // Prefetching, for a pipeline over a burst of frames (bulk hash lookups do the same): the
    // stages below each start loading what the next one reads, so the misses of several frames
    // overlap instead of stalling `account` one after another. The methods are `mutating` only so
    // that a call through the accounts' pointer borrows them in place instead of copying them.

    /// Stage 1: the flow's index hash (for the later stages and `account`), its slot prefetched.
    @inline(__always)
    mutating func prefetchSlot(for summary: borrowing PacketSummary) -> UInt64 {
        guard let flow = summary.flow else { return 0 }
        let hash = FlowTable.hash(flow, vlan: summary.vlan)
        flows.prefetchSlot(hash)
        return hash
    }

    /// Stage 2 (slot cached): prefetches the flow's record.
    @inline(__always)
    mutating func prefetchRecord(for summary: borrowing PacketSummary, hash: UInt64) {
        guard summary.flow != nil, let row = flows.likelyRow(hash) else { return }
        flows.prefetchRecord(row)
    }

    /// Stage 3 (record cached): prefetches the conversation rows the record points at (the
    /// summary by pointer, as for `account`); for a new flow, the index slots its conversations
    /// will be looked up in (1M packets, 100k new flows: 580 → 560 and 520 → 510 ms CPU, 15 and
    /// 21 interleaved pairs).
    @inline(__always)
    mutating func prefetchRows(for summary: UnsafePointer<PacketSummary>, hash: UInt64) {
        guard summary.pointee.flow != nil else { return }
        let count = summary.pointee.events.count
        guard count > 0 else { return }
        guard let row = flows.likelyRow(hash), row < flows.records.count else {
            // A new flow: `account` will look its conversations up by key.
            prefetchSlot(summary.pointee.events[0])
            if count > 1 { prefetchSlot(summary.pointee.events[1]) }
            return
        }
        prefetch(row: Int(flows.records[row].networkRow), of: summary.pointee.events[0].kind)
        if count > 1 { prefetch(row: Int(flows.records[row].transportRow), of: summary.pointee.events[1].kind) }
    }

    @inline(__always)
    private func prefetchSlot(_ event: ConversationEvent) {
        switch event.kind {
        case .ipv4: ipv4.prefetchSlot(event)
        case .ipv6: ipv6.prefetchSlot(event)
        case .tcp: tcp.prefetchSlot(event)
        case .udp: udp.prefetchSlot(event)
        }
    }

    @inline(__always)
    private mutating func prefetch(row: Int, of kind: ConversationEvent.Kind) {
        switch kind {
        case .ipv4: ipv4.prefetch(row)
        case .ipv6: ipv6.prefetch(row)
        case .tcp: tcp.prefetch(row)
        case .udp: udp.prefetch(row)
        }
    }

    /// Accounts a parsed frame: totals, layers, conversation events and its flow (`flowHash` from
    /// `prefetchSlot(for:)`).
    ///
    /// The common frame — one IP header and at most one TCP/UDP header, both the flow's own —
    /// takes one flow-table lookup: the flow record remembers its conversation rows. Anything
    /// else (tunnels, a new TCP stream on a reused 4-tuple) takes the general path.
    ///
    /// The summary is read where the parse left it, through a pointer: passed as a value read
    /// through the pipeline's frame pointer, it was copied (296 bytes) before every call, as the
    /// compiler cannot tell that these accounts' writes do not reach it.
    mutating func account(
        _ summary: UnsafePointer<PacketSummary>, flowHash: UInt64, wireLength: Int, capturedLength: Int,
        timestamp: UInt64, workstream: Int
    ) {
        countFrame(wireLength: wireLength, capturedLength: capturedLength, timestamp: timestamp)
        countLayers(summary.pointee.network, summary.pointee.transport)
        guard let flow = summary.pointee.flow else {
            countEvents(summary.pointee.events, of: nil, wireLength: wireLength, timestamp: timestamp)
            return
        }
        let row =
            flows.expires
            ? flows.countWithTimeouts(
                flow, vlan: summary.pointee.vlan, hash: flowHash, wireLength: wireLength, timestamp: timestamp,
                tcpFlags: summary.pointee.tcpFlags, workstream: workstream, icmpTypeCode: summary.pointee.icmpTypeCode)
            : flows.count(
                flow, vlan: summary.pointee.vlan, hash: flowHash, wireLength: wireLength, timestamp: timestamp,
                tcpFlags: summary.pointee.tcpFlags, workstream: workstream, icmpTypeCode: summary.pointee.icmpTypeCode)
        let eventCount = summary.pointee.events.count
        guard eventCount == 1 || eventCount == 2 else {
            countEvents(summary.pointee.events, of: flow, wireLength: wireLength, timestamp: timestamp)
            return
        }
        let network = summary.pointee.events[0]
        let transportKind = eventCount == 2 ? summary.pointee.events[1].kind : nil
        let simple =
            (eventCount == 1 || transportKind == .tcp || transportKind == .udp)
            && (network.kind == .ipv4 || network.kind == .ipv6)
            && network.source == flow.source && network.destination == flow.destination
        guard simple else {
            countEvents(summary.pointee.events, of: flow, wireLength: wireLength, timestamp: timestamp)
            return
        }
        let networkRow = Int(flows.records[row].networkRow)
        if networkRow < 0 || !countNetwork(network, row: networkRow, wireLength: wireLength) {
            flows.records[row].networkRow = Int32(countEvent(network, wireLength: wireLength, timestamp: timestamp))
        }
        guard eventCount == 2 else { return }
        let transport = summary.pointee.events[1]
        let transportRow = Int(flows.records[row].transportRow)
        let counted: Bool
        if transportRow < 0 {
            counted = false
        } else if transport.kind == .tcp {
            counted = tcp.count(
                row: transportRow, source: transport.source, sourcePort: transport.sourcePort, wireLength: wireLength,
                tcpFlags: transport.tcpFlags)
        } else {
            counted = udp.count(
                row: transportRow, source: transport.source, sourcePort: transport.sourcePort, wireLength: wireLength)
        }
        if !counted {
            flows.records[row].transportRow = Int32(countEvent(transport, wireLength: wireLength, timestamp: timestamp))
        }
    }

    private mutating func countNetwork(_ event: ConversationEvent, row: Int, wireLength: Int) -> Bool {
        event.kind == .ipv4
            ? ipv4.count(row: row, source: event.source, sourcePort: 0, wireLength: wireLength)
            : ipv6.count(row: row, source: event.source, sourcePort: 0, wireLength: wireLength)
    }

    /// Counts every event of a frame whose flow is `flow`. An event of other addresses (a tunnel's
    /// inner or outer header), or of a frame without a flow, marks its table: its row may also be
    /// counted on other workstreams, since frames are placed by their flow's addresses.
    private mutating func countEvents(
        _ events: ConversationEvents, of flow: FlowKey?, wireLength: Int, timestamp: UInt64
    ) {
        for event in events {
            let own =
                flow.map {
                    (event.source == $0.source && event.destination == $0.destination)
                        || (event.source == $0.destination && event.destination == $0.source)
                } ?? false
            countEvent(event, wireLength: wireLength, timestamp: timestamp)
            if !own { markForeign(event.kind) }
        }
    }

    private mutating func markForeign(_ kind: ConversationEvent.Kind) {
        switch kind {
        case .ipv4: ipv4.countsForeignEvents = true
        case .ipv6: ipv6.countsForeignEvents = true
        case .tcp: tcp.countsForeignEvents = true
        case .udp: udp.countsForeignEvents = true
        }
    }

    /// Counts one event through its table's index; returns its row.
    @discardableResult
    private mutating func countEvent(_ event: ConversationEvent, wireLength: Int, timestamp: UInt64) -> Int {
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

    static func index(_ network: NetworkProtocol) -> Int {
        switch network {
        case .arp: 0
        case .ipv4: 1
        case .ipv6: 2
        case .none: 3
        case .other: 4
        }
    }

    /// `TransportProtocol.allCases.count` as a constant (a test checks it): the per-frame layer
    /// count would otherwise build the `allCases` array every time.
    static var transportKinds: Int { 5 }

    static func index(_ transport: TransportProtocol) -> Int {
        switch transport {
        case .icmp: 0
        case .icmpv6: 1
        case .none: 2
        case .tcp: 3
        case .udp: 4
        }
    }

    func frames(_ network: NetworkProtocol, _ transport: TransportProtocol) -> Int {
        layers[Self.index(network) * Self.transportKinds + Self.index(transport)]
    }
}
