// TrafficAccounts+Conversations: how a workstream's conversation counts wait on its flow records.
//
// A common frame (one IP header and at most one TCP/UDP header, both its flow's own) is counted
// on its flow's record only, which is linked to the conversation rows its frames belong to (found
// or started, in order of first appearance, with the record's first frame). A record's counts are
// added to its rows — folded — when it leaves the table (a live export's sweep) and when the
// accounting ends (`foldConversations`); a frame that is not common makes its record fold what it
// has and count directly from then on. Sums commute, so the tables end exactly as if every frame
// had been counted in them as it came; only the TCP rows' stream state (closed by a FIN or RST,
// reopened by a pure SYN) is kept frame by frame. A frame touches its flow record instead of the
// record and two rows (1M packets, 100k flows: 316 → 293 ms wall, 520 → 490 ms CPU, 25
// interleaved pairs).
//
// In a replay (no live export, timeouts or bounded tables: `defersConversationRows`) a new
// record does not even look its rows up: it is marked deferred, and the deferred records are
// linked together, in the order of their first frames, when anything else is about to touch the
// tables (a frame counted directly, a record that must link at once, a restart) and when the
// accounting ends — then with the tables grown once and the lookups prefetched. Until then
// nothing but deferred records would have started rows, so the rows start in the same order, with
// the same endpoints A and first timestamps, as if each record had linked at its first frame. A
// TCP record whose 4-tuple another VLAN's record already has links at once (their frames share a
// row whose stream state changes frame by frame). 1M packets, 100k flows: 209 → 201 ms wall,
// 350 → 320 ms CPU (21 interleaved rounds), 210 → 202 ms (41), 236 → 225 ms after the replay
// peers (21); the linking at the end takes 15–23 ms of it, mostly backing the rows' new pages.
//
// Same ownership as TrafficAccounts: one workstream's handler calls only.

import PacketWire

extension TrafficAccounts {
    /// A flow record's first frame: finds or starts its conversation rows and links the record to
    /// them (the frame is counted there when the record is folded); when a table has no room for
    /// the conversation, the record is counted directly from then on.
    mutating func link(
        _ record: Int, network: ConversationEvent, transport: ConversationEvent?, flow: FlowKey, wireLength: Int,
        timestamp: UInt64
    ) {
        linkDeferredRecords()
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
    mutating func countDirectly(
        _ events: ConversationEvents, of flow: FlowKey, record: Int, wireLength: Int, timestamp: UInt64
    ) {
        linkDeferredRecords()
        if flows.records[record].networkRow >= 0 {
            fold(flows.records[record], excluding: (forward: flows.records[record].key == flow, wireLength: wireLength))
        }
        flows.records[record].networkRow = FlowRecord.countedDirectly
        countEvents(events, of: flow, wireLength: wireLength, timestamp: timestamp)
    }

    /// Whether a TCP segment with `flags` may change its conversation row's stream state: a FIN or
    /// RST closes it, a pure SYN on a closed row starts a new one.
    @inline(__always)
    static func changesStream(_ flags: UInt8) -> Bool { flags & 0x05 != 0 || flags & 0x12 == 0x02 }

    /// The table a flow's transport row is in (a TCP or UDP flow's frames have one).
    @inline(__always)
    static func transportKind(of key: FlowKey) -> ConversationEvent.Kind {
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
        linkDeferredRecords()
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
        linkDeferredRecords()
        flows.sweep(now: now, into: &ended, keepingAtMost: limit, slice: slice)
        for record in ended[first...] { fold(record) }
    }

    /// Links the records that put off finding their conversation rows (`defersConversationRows`)
    /// to them, in the order of their first frames — as `link` would have at each first frame:
    /// nothing else started a row since (everything else that touches the tables calls this
    /// first), and a deferring record's TCP row is its own (a record of its 4-tuple on another
    /// VLAN links at once), closed if the record saw a FIN or RST. `restarted`: a deferring record
    /// a new TCP connection restarted; its ended part (the last finished record) is linked in its
    /// place, and the record keeps the same links, as `link`'s records do across a restart.
    mutating func linkDeferredRecords(restarted: Int? = nil) {
        guard deferredRecords > 0 else { return }
        ipv4.reserve(deferredRows[0])
        ipv6.reserve(deferredRows[1])
        tcp.reserve(deferredRows[2])
        udp.reserve(deferredRows[3])
        let end = flows.records.count
        // The index slots are prefetched `ahead` records before their lookups, as the
        // accounting pipeline does for a burst's frames.
        let ahead = 8
        for index in firstDeferredRecord..<min(end, firstDeferredRecord + ahead) { prefetchDeferredSlots(index) }
        for index in firstDeferredRecord..<end where flows.records[index].networkRow == FlowRecord.deferred {
            if index + ahead < end { prefetchDeferredSlots(index + ahead) }
            let record = index == restarted ? flows.finished[flows.finished.count - 1] : flows.records[index]
            let key = record.key
            let networkRow =
                key.source.isIPv6
                ? ipv6.row(
                    source: key.source, sourcePort: 0, destination: key.destination, destinationPort: 0,
                    timestamp: record.firstTimestamp)
                : ipv4.row(
                    source: key.source, sourcePort: 0, destination: key.destination, destinationPort: 0,
                    timestamp: record.firstTimestamp)
            var transportRow = -1
            if record.transportRow >= 0 && Self.transportKind(of: key) == .tcp {
                transportRow = tcp.row(
                    source: key.source, sourcePort: key.sourcePort, destination: key.destination,
                    destinationPort: key.destinationPort, timestamp: record.firstTimestamp)
                if record.tcpFlags & 0x05 != 0 { tcp.close(transportRow) }
            } else if record.transportRow >= 0 {
                transportRow = udp.row(
                    source: key.source, sourcePort: key.sourcePort, destination: key.destination,
                    destinationPort: key.destinationPort, timestamp: record.firstTimestamp)
            }
            flows.records[index].networkRow = Int32(networkRow)
            flows.records[index].transportRow = Int32(transportRow)
            if index == restarted {
                flows.finished[flows.finished.count - 1].networkRow = Int32(networkRow)
                flows.finished[flows.finished.count - 1].transportRow = Int32(transportRow)
            }
        }
        firstDeferredRecord = end
        deferredRecords = 0
        deferredRows = InlineArray(repeating: 0)
    }

    private func prefetchDeferredSlots(_ index: Int) {
        let record = flows.records[index]
        guard record.networkRow == FlowRecord.deferred else { return }
        let key = record.key
        if key.source.isIPv6 {
            ipv6.prefetchSlot(source: key.source, sourcePort: 0, destination: key.destination, destinationPort: 0)
        } else {
            ipv4.prefetchSlot(source: key.source, sourcePort: 0, destination: key.destination, destinationPort: 0)
        }
        guard record.transportRow >= 0 else { return }
        if Self.transportKind(of: key) == .tcp {
            tcp.prefetchSlot(
                source: key.source, sourcePort: key.sourcePort, destination: key.destination,
                destinationPort: key.destinationPort)
        } else {
            udp.prefetchSlot(
                source: key.source, sourcePort: key.sourcePort, destination: key.destination,
                destinationPort: key.destinationPort)
        }
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
    mutating func countEvents(
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
}
