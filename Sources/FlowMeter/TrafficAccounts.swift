// TrafficAccounts: everything one workstream (or the link-layer handler) counts. Only the
// handler calls of one workstream touch its accounts — the engine never runs two calls of one
// workstream at once — so no lock is needed; accounts are merged after the engine stops. How a
// frame's conversation counts wait on its flow record, and a new record's rows on the end of the
// replay: TrafficAccounts+Conversations.swift.

import PacketWire

/// Counts for one part of the traffic.
struct TrafficAccounts {
    var frames = 0
    var wireBytes = 0
    var capturedBytes = 0
    var firstTimestamp = UInt64.max
    var lastTimestamp: UInt64 = 0
    /// Frame counts per network × transport, flattened (network-major): 5 × 5 (`NetworkProtocol`'s
    /// cases × `transportKinds`; a test checks the size). Inline, so that counting a frame is an
    /// add, not an array's uniqueness check and call.
    var layers = InlineArray<25, Int>(repeating: 0)
    var ipv4 = ConversationTable()
    var ipv6 = ConversationTable()
    var tcp = ConversationTable()
    var udp = ConversationTable()
    var flows: FlowTable
    /// Whether a new flow record puts off finding its conversation rows until something else
    /// needs the tables (TrafficAccounts+Conversations.swift): a replay without live export,
    /// timeouts or bounded tables.
    var defersConversationRows = false
    /// Records from `flows.records[firstDeferredRecord...]` may be waiting for their rows.
    var firstDeferredRecord = 0
    /// How many records wait for their rows.
    var deferredRecords = 0
    /// How many rows those records may start in each table, by `ConversationKind` order (ip,
    /// ipv6, tcp, udp), for the tables to make room for at once.
    var deferredRows = InlineArray<4, Int>(repeating: 0)
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

    /// Stage 3 (record cached): prefetches what `account` will read of the conversation tables
    /// (the summary by pointer, as for `account`): for a new flow (unless new records defer
    /// their rows), or one counted directly, the index slots its conversations are looked up in
    /// (1M packets, 100k new flows: 580 → 560 and 520 → 510 ms CPU, 15 and 21 interleaved pairs);
    /// for a linked record, its TCP row when the frame's flags change the stream's state (its
    /// other frames, and a deferring record's, touch no row).
    @inline(__always)
    mutating func prefetchRows(for summary: UnsafePointer<PacketSummary>, hash: UInt64) {
        guard summary.pointee.flow != nil else { return }
        let count = summary.pointee.events.count
        guard count > 0 else { return }
        let row = flows.likelyRow(hash) ?? -1
        let networkRow = row >= 0 && row < flows.records.count ? flows.records[row].networkRow : -1
        guard networkRow >= 0 else {
            guard networkRow == FlowRecord.countedDirectly || !defersConversationRows else { return }
            prefetchSlot(summary.pointee.events[0])
            if count > 1 { prefetchSlot(summary.pointee.events[1]) }
            return
        }
        guard count == 2, summary.pointee.events[1].kind == .tcp,
            Self.changesStream(summary.pointee.events[1].tcpFlags),
            flows.records[row].transportRow >= 0
        else { return }
        tcp.prefetch(Int(flows.records[row].transportRow))
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

    /// Accounts a parsed frame: totals, layers, conversation events and its flow (`flowHash` from
    /// `prefetchSlot(for:)`).
    ///
    /// The common frame — one IP header and at most one TCP/UDP header, both the flow's own —
    /// takes one flow-table lookup and is counted on its record (see the top of this file).
    /// Anything else (tunnels, a new TCP stream on a reused 4-tuple) is counted in the tables
    /// directly.
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
            if !summary.pointee.events.isEmpty { linkDeferredRecords() }
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
        if summary.pointee.tcpFlags & 0x12 == 0x02 && flows.records[row].networkRow == FlowRecord.deferred
            && flows.records[row].packets == 1
        {
            // A new TCP connection on a deferring record's ports restarted it.
            linkDeferredRecords(restarted: row)
        }
        let eventCount = summary.pointee.events.count
        guard eventCount == 1 || eventCount == 2 else {
            countDirectly(summary.pointee.events, of: flow, record: row, wireLength: wireLength, timestamp: timestamp)
            return
        }
        let network = summary.pointee.events[0]
        let transport: ConversationEvent? = eventCount == 2 ? summary.pointee.events[1] : nil
        let simple =
            (transport == nil || transport!.kind == Self.transportKind(of: flows.records[row].key))
            && (network.kind == .ipv4 || network.kind == .ipv6)
            && network.source == flow.source && network.destination == flow.destination
        let networkRow = flows.records[row].networkRow
        guard simple, networkRow != FlowRecord.countedDirectly else {
            countDirectly(summary.pointee.events, of: flow, record: row, wireLength: wireLength, timestamp: timestamp)
            return
        }
        guard networkRow >= 0 || networkRow == FlowRecord.deferred else {
            if defersConversationRows, transport.map({ Self.isOwn($0, of: flow) }) ?? true,
                !(transport?.kind == .tcp && flows.hasOtherVLAN(flow, vlan: summary.pointee.vlan, hash: flowHash))
            {
                flows.records[row].networkRow = FlowRecord.deferred
                flows.records[row].transportRow = transport == nil ? -1 : 0
                deferredRecords += 1
                deferredRows[network.kind == .ipv6 ? 1 : 0] += 1
                if let transport { deferredRows[transport.kind == .tcp ? 2 : 3] += 1 }
                return
            }
            link(row, network: network, transport: transport, flow: flow, wireLength: wireLength, timestamp: timestamp)
            return
        }
        let transportRow = Int(flows.records[row].transportRow)
        guard (transport == nil) == (transportRow < 0) else {
            countDirectly(summary.pointee.events, of: flow, record: row, wireLength: wireLength, timestamp: timestamp)
            return
        }
        guard networkRow >= 0 else { return }
        // A TCP row's stream state is kept as frames come, as tshark keeps it; its counts wait.
        guard let transport, transport.kind == .tcp, Self.changesStream(transport.tcpFlags) else { return }
        if transport.tcpFlags & 0x12 == 0x02 && tcp.isClosed(transportRow) {
            // A new stream on these ports: the record restarted with this frame (its connection's
            // FIN or RST closed it), or another record of the 4-tuple (another VLAN) closed the row.
            linkDeferredRecords()
            let newRow =
                flows.records[row].packets == 1
                ? tcp.row(
                    source: transport.source, sourcePort: transport.sourcePort, destination: transport.destination,
                    destinationPort: transport.destinationPort, timestamp: timestamp, tcpFlags: transport.tcpFlags)
                : -1
            guard newRow >= 0 else {
                countDirectly(
                    summary.pointee.events, of: flow, record: row, wireLength: wireLength, timestamp: timestamp)
                return
            }
            flows.records[row].transportRow = Int32(newRow)
        }
        if transport.tcpFlags & 0x05 != 0 { tcp.close(Int(flows.records[row].transportRow)) }
    }

    /// Whether a transport event is of the flow's own endpoints, as a deferred record's row will
    /// be (an IPv6 routing header can give the transport header another destination).
    @inline(__always)
    static func isOwn(_ transport: ConversationEvent, of flow: FlowKey) -> Bool {
        transport.source == flow.source && transport.destination == flow.destination
            && transport.sourcePort == flow.sourcePort && transport.destinationPort == flow.destinationPort
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
