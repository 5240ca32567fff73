// ReplayResult: the merged accounts of a replay — totals, the l3/l4 table, the four conversation
// tables, flow records, drops by reason — plus the engine's own snapshot.

import NetISR
import PacketWire

/// The conversation tables tshark computes.
public enum ConversationKind: String, Sendable, CaseIterable {
    case ip, ipv6, tcp, udp
}

/// What a replay counted.
public struct ReplayResult: Sendable {
    /// Frames read.
    public let frames: Int
    /// Sum of original (wire) lengths.
    public let wireBytes: Int
    /// Sum of captured lengths.
    public let capturedBytes: Int
    /// First and last capture timestamps (ns since the epoch); nil without frames.
    public let timeSpan: (first: UInt64, last: UInt64)?
    /// Frames per (network, transport) pair, in the oracle's names, sorted.
    public let layers: [(network: NetworkProtocol, transport: TransportProtocol, frames: Int)]
    /// Conversation tables, their rows unordered (each workstream's in order of first appearance,
    /// one workstream after another): `sortedConversations(_:)` orders a table as tshark does, a
    /// cost paid only by those who print one.
    public let conversations: [ConversationKind: TableRows<ConversationRow>]
    /// Flow records, unordered (each workstream's in order of first packet, one workstream after
    /// another, unless a live export's sweeps moved some): handing them over costs no copy.
    /// `flowsInOrder()` sorts them.
    public let flows: TableRows<FlowRecord>
    /// Frames of conversations a full table had no room for (`maximumConversations`), per table;
    /// empty when every conversation was tabled.
    public let untrackedConversationFrames: [ConversationKind: Int]
    /// Flow records a live export sent during the capture (`LiveFlowExport`); not in `flows`.
    public let flowsExportedDuringCapture: Int
    /// Flow records that ended during a live capture with nowhere to go (a `LiveFlowExport` with
    /// neither a collector nor a file, keeping the tables bounded): counted, not in `flows`.
    public let flowsDiscardedDuringCapture: Int
    /// How many flow records there are: those in `flows` and those that left during the capture.
    public var flowCount: Int { flows.count + flowsExportedDuringCapture + flowsDiscardedDuringCapture }
    /// The timeouts that ended flow records early (none by default).
    public let flowTimeouts: FlowTimeouts
    /// Frames of unsupported link types, by link type.
    public let unsupportedLinkTypes: [UInt32: Int]
    /// Packets dropped, by reason (engine reasons, the kernel's for live captures, unsupported link
    /// types).
    public let drops: [(reason: String, packets: Int)]
    /// The engine's report data.
    public let snapshot: NetISRSnapshot
    /// Files not read to their end.
    public let errors: [ReplayError]
    /// Wall-clock time of the replay.
    public let elapsedNanoseconds: UInt64
    /// Whether the replay was cancelled before the end.
    public let cancelled: Bool
    /// Whether the frames came from a live interface (`drops` then has the kernel's).
    public let isLive: Bool
    /// The read filter's expression, if the replay had one.
    public let filter: String?
    /// Frames the read filter skipped (not in any count above).
    public let filteredFrames: Int
    /// Frames and bytes per interval of capture time, if asked (`ReplayConfiguration.ioInterval`).
    public let ioStatistics: IOStatistics?
    /// Frames the tools that made the files say they dropped while capturing (pcapng interface
    /// statistics, `CaptureReader.droppedWhileCapturing`), all files together; nil when no file
    /// said. They were never in the files, so in no other count here.
    public let droppedWhileCapturing: Int?

    /// One conversation table sorted as tshark sorts it: by address A, port A, address B, port B,
    /// then first frame.
    public func sortedConversations(_ kind: ConversationKind) -> [ConversationRow] {
        ConversationTable.sortedAsTshark(conversations[kind, default: []])
    }

    /// Every flow record, by first packet's time, then by addresses and ports.
    ///
    /// Sorts (time, position) pairs and looks at whole records only to break ties of time: moving
    /// 16-byte pairs instead of 128-byte records took a 100k-flow sort from about 28 to 4 ms.
    public func flowsInOrder() -> [FlowRecord] { Self.inOrder(flows) }

    /// tshark's endpoint table of one kind (`-z endpoints,…`): each address (and port) of the
    /// conversation table with the frames and bytes it sent and received, by address and port.
    public func endpoints(_ kind: ConversationKind) -> [EndpointRow] {
        EndpointTable.endpoints(of: conversations[kind, default: []])
    }

    /// `flows` in `flowsInOrder()`'s order (records sent by a live export, say).
    public static func inOrder<Records: RandomAccessCollection<FlowRecord>>(_ flows: Records) -> [FlowRecord]
    where Records.Index == Int {
        var order = flows.enumerated().map { (time: $0.element.firstTimestamp, position: $0.offset) }
        order.sort { left, right in
            if left.time != right.time { return left.time < right.time }
            let (a, b) = (flows[left.position].key, flows[right.position].key)
            return (a.source, a.sourcePort, a.destination, a.destinationPort, left.position)
                < (b.source, b.sourcePort, b.destination, b.destinationPort, right.position)
        }
        return order.map { flows[$0.position] }
    }

    /// Builds the result from `accounts`, moving their tables out (they are left empty);
    /// `placedByAddresses` as in `ConversationTable.merge`.
    init(
        accounts: ReplayAccounts, placedByAddresses: Bool, snapshot: NetISRSnapshot, errors: [ReplayError],
        elapsedNanoseconds: UInt64,
        cancelled: Bool, kernelDrops: Int? = nil, filter: ReplayFilter? = nil, flowsExported: Int = 0,
        flowsDiscarded: Int = 0, ioStatistics: IOStatistics? = nil, droppedWhileCapturing: Int? = nil
    ) {
        self.ioStatistics = ioStatistics
        self.droppedWhileCapturing = droppedWhileCapturing
        accounts.foldConversations()
        let all = accounts.all + accounts.allLinks
        frames = all.reduce(0) { $0 + $1.frames }
        wireBytes = all.reduce(0) { $0 + $1.wireBytes }
        capturedBytes = all.reduce(0) { $0 + $1.capturedBytes }
        let first = all.map(\.firstTimestamp).min() ?? .max
        timeSpan = frames == 0 ? nil : (first, all.map(\.lastTimestamp).max() ?? first)
        var layers: [(NetworkProtocol, TransportProtocol, Int)] = []
        for network in NetworkProtocol.allCases {
            for transport in TransportProtocol.allCases {
                let count = all.reduce(0) { $0 + $1.frames(network, transport) }
                if count > 0 { layers.append((network, transport, count)) }
            }
        }
        self.layers = layers
        var untracked: [ConversationKind: Int] = [:]
        for kind in ConversationKind.allCases {
            let frames = all.reduce(0) { $0 + $1[keyPath: TrafficAccounts.table(kind)].untrackedFrames }
            if frames > 0 { untracked[kind] = frames }
        }
        untrackedConversationFrames = untracked
        // The tables move out of the accounts one kind at a time, so each part is freed once
        // merged: the peak holds the accounts or the result, not both.
        _ = consume all
        var conversations: [ConversationKind: TableRows<ConversationRow>] = [:]
        for kind in ConversationKind.allCases {
            conversations[kind] = ConversationTable.merge(
                accounts.take(TrafficAccounts.table(kind), leaving: ConversationTable()),
                placedByAddresses: placedByAddresses)
        }
        self.conversations = conversations
        let flowTables = accounts.take(\.flows, leaving: FlowTable())
        flowTimeouts = flowTables.first?.timeouts ?? FlowTimeouts()
        flows = TableRows(parts: flowTables.flatMap { [$0.finished, $0.records] })
        flowsExportedDuringCapture = flowsExported
        flowsDiscardedDuringCapture = flowsDiscarded
        unsupportedLinkTypes = accounts.allLinks.reduce(into: [:]) {
            $0.merge($1.unsupportedLinkTypes, uniquingKeysWith: +)
        }
        let totals = snapshot.totals
        var drops: [(String, Int)] = [
            (DropReason.queueFull.rawValue, totals.queueDrops),
            (DropReason.noHandler.rawValue, totals.noHandlerDrops),
            (DropReason.drainedAtUnregister.rawValue, totals.drainedAtUnregister),
            (DropReason.discardedAtStop.rawValue, totals.discardedAtStop),
        ]
        if let kernelDrops { drops.append(("kernel", kernelDrops)) }
        for (linkType, count) in unsupportedLinkTypes.sorted(by: { $0.key < $1.key }) {
            drops.append(("unsupported-link-type-\(linkType)", count))
        }
        self.drops = drops
        self.snapshot = snapshot
        self.errors = errors
        self.elapsedNanoseconds = elapsedNanoseconds
        self.cancelled = cancelled
        isLive = kernelDrops != nil
        self.filter = filter?.expression
        filteredFrames = filter?.filtered ?? 0
    }
}
