// The protocols a replay registers, numbered as FreeBSD numbers its netisr protocols:
// - ether (9): source-ordered and direct, like FreeBSD's; it runs in the reader thread, walks
//   the link layers and hands each frame to ip, ip6 or arp (counting the rest itself). With
//   several reader threads (live fanout) it is ordered by reader instead, so each reader's ether
//   calls have a workstream, forwarder and link account of their own;
// - ip (1), ip6 (10), arp (7): flow-ordered by the symmetric Toeplitz hash of the address pair,
//   so both directions of every conversation land on one workstream, in capture order; each
//   workstream accounts into its own TrafficAccounts.
//
// A packet's sourceID carries its link type (low 16 bits) and file index (high 16 bits); its
// packetType the network protocol the reader found while hashing (1 + TrafficAccounts.index),
// so that ether demultiplexes without parsing the frame again.

import NetISR
import PacketWire

enum ReplayProtocol {
    static let ip: ProtocolNumber = 1
    static let arp: ProtocolNumber = 7
    static let ether: ProtocolNumber = 9
    static let ip6: ProtocolNumber = 10
    /// A queue-less protocol (a software interrupt) whose handler sweeps its workstream's flow
    /// table for a live export; registered only then.
    static let flowSweep: ProtocolNumber = 15

    static func linkType(of packet: borrowing Packet) -> LinkType { LinkType(rawValue: packet.sourceID & 0xFFFF) }
    static func sourceID(linkType: LinkType, file: Int) -> UInt32 {
        (linkType.rawValue & 0xFFFF) | UInt32(truncatingIfNeeded: file & 0xFFFF) << 16
    }

    /// The packet type that records `network` as found by the reader.
    static func packetType(_ network: NetworkProtocol) -> UInt8 { UInt8(TrafficAccounts.index(network) + 1) }

    /// The network protocol of a frame: the reader's finding if it left one, else a parse of the
    /// link layers (`other` for link types this library does not parse).
    static func network(of packet: borrowing Packet) -> NetworkProtocol {
        switch packet.packetType {
        case 1: .arp
        case 2: .ipv4
        case 3: .ipv6
        case 4: .none
        case 5: .other
        default:
            linkType(of: packet).isSupported
                ? PacketParser.networkProtocol(packet.bytes, linkType: linkType(of: packet)) : .other
        }
    }
}

/// Per-workstream accounts, plus the link layer's own per workstream. Account N is touched only by
/// handler calls on workstream N (which the engine never runs concurrently); link account N only
/// by ether handler calls on workstream N, which run in one reader thread.
///
/// The accounts sit behind a pointer: the per-packet path mutates them without the dynamic
/// exclusivity checks a class's stored arrays would cost.
final class ReplayAccounts: @unchecked Sendable {  // unchecked: ownership as described above
    let workstreams: UnsafeMutablePointer<TrafficAccounts>
    let links: UnsafeMutablePointer<TrafficAccounts>
    let count: Int
    /// Queueing delays, recorded in live mode only (a file's timestamps are history).
    let delays: DelayHistogram?

    init(
        workstreams: Int, measureDelays: Bool = false, flowTimeouts: FlowTimeouts = FlowTimeouts(),
        maximumConversations: Int = .max, defersConversationRows: Bool = false
    ) {
        delays = measureDelays ? DelayHistogram(workstreams: workstreams) : nil
        count = workstreams
        self.workstreams = .allocate(capacity: workstreams)
        links = .allocate(capacity: workstreams)
        // Each its own accounts: copies of one value would share their tables' storage until
        // each workstream's first write copied it, on two threads at once.
        for index in 0..<workstreams {
            (self.workstreams + index).initialize(
                to: TrafficAccounts(flowTimeouts: flowTimeouts, maximumConversations: maximumConversations))
            self.workstreams[index].defersConversationRows =
                defersConversationRows && !flowTimeouts.areSet && maximumConversations == .max
            (links + index).initialize(to: TrafficAccounts())
        }
    }

    deinit {
        workstreams.deinitialize(count: count)
        workstreams.deallocate()
        links.deinitialize(count: count)
        links.deallocate()
    }

    /// Folds every workstream's deferred conversation counts into its tables (after the engine
    /// stopped; `TrafficAccounts.foldConversations`): each workstream's on a thread of its own,
    /// the caller's the first, as they share nothing — the fold is the longest serial step after
    /// a replay (1M packets, 100k flows, two workstreams: 6.5–7.2 → 4.2–4.7 ms).
    func foldConversations() {
        _ = inParallel(count) { [self] index in workstreams[index].foldConversations() }
    }

    /// Every workstream's accounts (after the engine stopped).
    var all: [TrafficAccounts] { Array(UnsafeBufferPointer(start: workstreams, count: count)) }
    /// Moves one table out of every workstream's accounts, leaving `empty` in its place (after
    /// the engine stopped).
    func take<Table>(_ table: WritableKeyPath<TrafficAccounts, Table>, leaving empty: Table) -> [Table] {
        (0..<count).map { index in
            let taken = workstreams[index][keyPath: table]
            workstreams[index][keyPath: table] = empty
            return taken
        }
    }

    /// Every workstream's link-layer accounts (after the engine stopped).
    var allLinks: [TrafficAccounts] { Array(UnsafeBufferPointer(start: links, count: count)) }
}

/// What the ether handler forwards on one workstream, batched per protocol.
///
/// Unchecked Sendable: used only by ether handler calls on its workstream (one reader thread),
/// which is also why the batches skip dynamic exclusivity checks (several per frame otherwise).
final class EtherForwarder: @unchecked Sendable {
    @exclusivity(unchecked) var ip = PacketBatch(capacity: 256)
    @exclusivity(unchecked) var ip6 = PacketBatch(capacity: 256)
    @exclusivity(unchecked) var arp = PacketBatch(capacity: 256)
}

enum ReplayRegistration {
    static func register(
        on engine: NetISR, accounts: ReplayAccounts, ordering: OrderingPolicy, etherOrdering: OrderingPolicy,
        queueLimit: Int, whenFull: QueueFullAction, flowExport: LiveFlowExport? = nil
    ) throws(NetISRError) {
        let forwarders = (0..<accounts.count).map { _ in EtherForwarder() }
        try engine.register(
            ProtocolRegistration(
                name: "ether", number: ReplayProtocol.ether, queueLimit: queueLimit, ordering: etherOrdering,
                dispatchPolicy: .direct
            ) {
                // Unowned: the engine keeps this handler, so a strong reference here would keep
                // the engine — its rings, its accounts' tables — alive after every replay.
                [unowned engine] burst in
                let forwarder = forwarders[burst.workstreamID]
                let link = accounts.links + burst.workstreamID
                while let packet = burst.next() {
                    let network = ReplayProtocol.network(of: packet)
                    var rejected: Packet?
                    switch network {
                    case .ipv4: rejected = forwarder.ip.append(packet)
                    case .ipv6: rejected = forwarder.ip6.append(packet)
                    case .arp: rejected = forwarder.arp.append(packet)
                    case .other, .none:
                        link.pointee.countFrame(
                            wireLength: Int(packet.wireLength), capturedLength: packet.bytes.count,
                            timestamp: packet.timestamp)
                        link.pointee.countLayers(network, .none)
                        let linkType = ReplayProtocol.linkType(of: packet)
                        if !linkType.isSupported {
                            link.pointee.unsupportedLinkTypes[linkType.rawValue, default: 0] += 1
                        }
                        continue
                    }
                    if let rejected {
                        flush(engine, forwarder, whenFull)
                        _ = Self.append(rejected, network, forwarder)
                    }
                }
                flush(engine, forwarder, whenFull)
            })
        func handler(_ protocolIndex: Int) -> PacketHandler {
            { burst in
                // Read the shared accounts object once per burst, not per packet: its cache line
                // may neighbour data the reader writes.
                let workstream = burst.workstreamID
                let account = accounts.workstreams + workstream
                let delays = accounts.delays
                let now = delays == nil ? 0 : DelayHistogram.now()
                AccountingPipeline.run(
                    &burst, into: account, workstream: workstream, protocolIndex: protocolIndex, delays: delays,
                    now: now)
            }
        }
        try engine.register(
            ProtocolRegistration(
                name: "ip", number: ReplayProtocol.ip, queueLimit: queueLimit, ordering: ordering, handler: handler(0)))
        try engine.register(
            ProtocolRegistration(
                name: "ip6", number: ReplayProtocol.ip6, queueLimit: queueLimit, ordering: ordering, handler: handler(1)
            ))
        try engine.register(
            ProtocolRegistration(name: "arp", number: ReplayProtocol.arp, queueLimit: queueLimit, ordering: ordering) {
                burst in
                let workstream = burst.workstreamID
                let now = accounts.delays == nil ? 0 : DelayHistogram.now()
                while let packet = burst.next() {
                    accounts.delays?.record(workstream: workstream, protocol: 2, captured: packet.timestamp, now: now)
                    accounts.workstreams[workstream].countFrame(
                        wireLength: Int(packet.wireLength), capturedLength: packet.bytes.count,
                        timestamp: packet.timestamp)
                    accounts.workstreams[workstream].countLayers(.arp, .none)
                }
            })
        if let flowExport { try registerFlowSweep(on: engine, accounts: accounts, export: flowExport) }
    }

    /// The flow sweep's software interrupt: `engine.schedule(ReplayProtocol.flowSweep, workstream:)`
    /// runs it on that workstream's worker, between its other handler calls.
    private static func registerFlowSweep(on engine: NetISR, accounts: ReplayAccounts, export: LiveFlowExport)
        throws(NetISRError)
    {
        try engine.register(
            ProtocolRegistration(name: "flowswp", number: ReplayProtocol.flowSweep, hasQueue: false) { burst in
                export.sweep(accounts.workstreams + burst.workstreamID, workstreams: accounts.count)
            })
    }

    private static func append(_ packet: consuming Packet, _ network: NetworkProtocol, _ forwarder: EtherForwarder)
        -> Packet?
    {
        switch network {
        case .ipv4: forwarder.ip.append(packet)
        case .ipv6: forwarder.ip6.append(packet)
        default: forwarder.arp.append(packet)
        }
    }

    private static func flush(_ engine: NetISR, _ forwarder: EtherForwarder, _ whenFull: QueueFullAction) {
        if !forwarder.ip.isEmpty { engine.dispatch(ReplayProtocol.ip, batch: &forwarder.ip, whenFull: whenFull) }
        if !forwarder.ip6.isEmpty { engine.dispatch(ReplayProtocol.ip6, batch: &forwarder.ip6, whenFull: whenFull) }
        if !forwarder.arp.isEmpty { engine.dispatch(ReplayProtocol.arp, batch: &forwarder.arp, whenFull: whenFull) }
    }
}
