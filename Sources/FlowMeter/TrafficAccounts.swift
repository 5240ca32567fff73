// TrafficAccounts: everything one workstream (or the link-layer handler) counts. Only the
// handler calls of one workstream touch its accounts — the engine never runs two calls of one
// workstream at once — so no lock is needed; accounts are merged after the engine stops.
//
// Conversation counts wait on the flow records: a common frame (one IP header and at most one
// TCP/UDP header, both its flow's own) is counted on its flow's record only, which is linked to
// the conversation rows its frames belong to (found or started, in order of first appearance,
// with the record's first frame). A record's counts are added to its rows — folded — when it
// leaves the table (a live export's sweep) and when the accounting ends
// (`foldConversations`); a frame that is not common makes its record fold what it has and count
// directly from then on. Sums commute, so the tables end exactly as if every frame had been
// counted in them as it came; only the TCP rows' stream state (closed by a FIN or RST, reopened by
// a pure SYN) is kept frame by frame. A frame touches its flow record instead of the record and
// two rows (1M packets, 100k flows: 316 → 293 ms wall, 520 → 490 ms CPU, 25 interleaved pairs).

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

    /// Stage 3 (record cached): prefetches what `account` will read of the conversation tables
    /// (the summary by pointer, as for `account`): for a new flow, or one counted directly, the
    /// index slots its conversations are looked up in (1M packets, 100k new flows: 580 → 560 and
    /// 520 → 510 ms CPU, 15 and 21 interleaved pairs); for a linked record, its TCP row when the
    /// frame's flags change the stream's state (its other frames touch no row).
    @inline(__always)
    mutating func prefetchRows(for summary: UnsafePointer<PacketSummary>, hash: UInt64) {
        guard summary.pointee.flow != nil else { return }
        let count = summary.pointee.events.count
        guard count > 0 else { return }
        guard let row = flows.likelyRow(hash), row < flows.records.count, flows.records[row].networkRow >= 0 else {
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
        guard networkRow >= 0 else {
            link(row, network: network, transport: transport, flow: flow, wireLength: wireLength, timestamp: timestamp)
            return
        }
        let transportRow = Int(flows.records[row].transportRow)
        guard (transport == nil) == (transportRow < 0) else {
            countDirectly(summary.pointee.events, of: flow, record: row, wireLength: wireLength, timestamp: timestamp)
            return
        }
        // A TCP row's stream state is kept as frames come, as tshark keeps it; its counts wait.
        guard let transport, transport.kind == .tcp, Self.changesStream(transport.tcpFlags) else { return }
        if transport.tcpFlags & 0x12 == 0x02 && tcp.isClosed(transportRow) {
            // A new stream on these ports: the record restarted with this frame (its connection's
            // FIN or RST closed it), or another record of the 4-tuple (another VLAN) closed the row.
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

    /// A flow record's first frame: finds or starts its conversation rows and links the record to
    /// them (the frame is counted there when the record is folded); when a table has no room for
    /// the conversation, the record is counted directly from then on.
    private mutating func link(
        _ record: Int, network: ConversationEvent, transport: ConversationEvent?, flow: FlowKey, wireLength: Int,
        timestamp: UInt64
    ) {
        let networkRow = row(of: network, timestamp: timestamp)
        let transportRow = transport.map { row(of: $0, timestamp: timestamp) } ?? -1
        guard networkRow >= 0, transport == nil || transportRow >= 0 else {
            flows.records[record].networkRow = FlowRecord.countedDirectly
            countEvent(network, wireLength: wireLength, timestamp: timestamp)
            if let transport { countEvent(transport, wireLength: wireLength, timestamp: timestamp) }
            return
        }
        flows.records[record].networkRow = Int32(networkRow)
        flows.records[record].transportRow = Int32(transportRow)
        if let transport, transport.kind == .tcp, transport.tcpFlags & 0x05 != 0 { tcp.close(transportRow) }
    }

    /// Counts a frame's events in the tables one by one. Its flow's record, if it was deferring its
    /// counts, first folds the frames before this one and is counted directly from then on.
    private mutating func countDirectly(
        _ events: ConversationEvents, of flow: FlowKey, record: Int, wireLength: Int, timestamp: UInt64
    ) {
        if flows.records[record].networkRow >= 0 {
            fold(flows.records[record], excluding: (forward: flows.records[record].key == flow, wireLength: wireLength))
        }
        flows.records[record].networkRow = FlowRecord.countedDirectly
        countEvents(events, of: flow, wireLength: wireLength, timestamp: timestamp)
    }

    /// Whether a TCP segment with `flags` may change its conversation row's stream state: a FIN or
    /// RST closes it, a pure SYN on a closed row starts a new one.
    @inline(__always)
    private static func changesStream(_ flags: UInt8) -> Bool { flags & 0x05 != 0 || flags & 0x12 == 0x02 }

    /// The table a flow's transport row is in (a TCP or UDP flow's frames have one).
    @inline(__always)
    private static func transportKind(of key: FlowKey) -> ConversationEvent.Kind {
        key.ipProtocol == 6 ? .tcp : .udp
    }

    /// Adds a record's frames, counted on the record alone while it was linked to its
    /// conversation rows, to those rows — all but `excluding`'s frame (the one being accounted).
    /// The caller then marks the record counted directly, or lets it go.
    private mutating func fold(_ record: FlowRecord, excluding frame: (forward: Bool, wireLength: Int)? = nil) {
        guard record.networkRow >= 0 else { return }
        var (frames, bytes) = (record.packetsForward, record.bytesForward)
        var (framesBack, bytesBack) = (record.packetsReverse, record.bytesReverse)
        if let frame, frame.forward {
            (frames, bytes) = (frames - 1, bytes - frame.wireLength)
        } else if let frame {
            (framesBack, bytesBack) = (framesBack - 1, bytesBack - frame.wireLength)
        }
        let key = record.key
        let network = Int(record.networkRow)
        if key.source.isIPv6 {
            ipv6.add(
                to: network, source: key.source, sourcePort: 0, frames: frames, bytes: bytes,
                destination: key.destination, destinationPort: 0, framesBack: framesBack, bytesBack: bytesBack)
        } else {
            ipv4.add(
                to: network, source: key.source, sourcePort: 0, frames: frames, bytes: bytes,
                destination: key.destination, destinationPort: 0, framesBack: framesBack, bytesBack: bytesBack)
        }
        guard record.transportRow >= 0 else { return }
        let transport = Int(record.transportRow)
        if Self.transportKind(of: key) == .tcp {
            tcp.add(
                to: transport, source: key.source, sourcePort: key.sourcePort, frames: frames, bytes: bytes,
                destination: key.destination, destinationPort: key.destinationPort, framesBack: framesBack,
                bytesBack: bytesBack)
        } else {
            udp.add(
                to: transport, source: key.source, sourcePort: key.sourcePort, frames: frames, bytes: bytes,
                destination: key.destination, destinationPort: key.destinationPort, framesBack: framesBack,
                bytesBack: bytesBack)
        }
    }

    /// Folds every flow record's deferred counts into the conversation tables. Call it once the
    /// accounting has ended, before the tables are read.
    mutating func foldConversations() {
        for index in flows.finished.indices {
            fold(flows.finished[index])
            flows.finished[index].networkRow = FlowRecord.countedDirectly
        }
        for index in flows.records.indices {
            fold(flows.records[index])
            flows.records[index].networkRow = FlowRecord.countedDirectly
        }
    }

    /// Sweeps the flow table (`FlowTable.sweep`), folding the ended records' counts into the
    /// conversation tables as they leave it.
    mutating func sweepFlows(
        now: UInt64, into ended: inout [FlowRecord], keepingAtMost limit: Int = .max, slice: Int = .max
    ) {
        let first = ended.count
        flows.sweep(now: now, into: &ended, keepingAtMost: limit, slice: slice)
        for record in ended[first...] { fold(record) }
    }

    /// The row an event is counted in, found or started (nothing counted); -1 if its table is full.
    private mutating func row(of event: ConversationEvent, timestamp: UInt64) -> Int {
        switch event.kind {
        case .ipv4:
            ipv4.row(
                source: event.source, sourcePort: 0, destination: event.destination, destinationPort: 0,
                timestamp: timestamp)
        case .ipv6:
            ipv6.row(
                source: event.source, sourcePort: 0, destination: event.destination, destinationPort: 0,
                timestamp: timestamp)
        case .tcp:
            tcp.row(
                source: event.source, sourcePort: event.sourcePort, destination: event.destination,
                destinationPort: event.destinationPort, timestamp: timestamp, tcpFlags: event.tcpFlags)
        case .udp:
            udp.row(
                source: event.source, sourcePort: event.sourcePort, destination: event.destination,
                destinationPort: event.destinationPort, timestamp: timestamp)
        }
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
