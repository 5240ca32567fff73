// The vocabulary of dispatch: how a packet reaches its handler (DispatchPolicy), which
// workstream keeps it in order (OrderingPolicy), and what the engine says about one packet
// (DispatchOutcome, DropReason).

/// How a dispatched packet reaches its handler (FreeBSD's `NETISR_DISPATCH_*`).
public enum DispatchPolicy: String, Sendable, CaseIterable {
    /// Run the handler now, in the caller's thread.
    case direct
    /// Run it now only if the target workstream is idle (not running, not direct-dispatching,
    /// nothing scheduled) and this protocol's queue there is empty; otherwise queue it, so a
    /// packet never overtakes queued ones.
    case hybrid
    /// Always queue it for the workstream's thread.
    case deferred
}

/// Where a workstream should handle a packet, as a protocol's CPU callback decides.
public enum WorkstreamPreference: Sendable, Equatable {
    /// Handle it on this workstream (taken modulo the workstream count).
    case workstream(Int)
    /// No preference: with hybrid dispatch the packet runs in the caller; otherwise it falls back
    /// to source ordering.
    case none
}

/// Computes a flow id for a packet that has none (FreeBSD's `nh_m2flow`).
public typealias FlowIDCallback = @Sendable (borrowing Packet) -> UInt32?

/// Chooses a workstream for a packet (FreeBSD's `nh_m2cpuid`).
public typealias WorkstreamCallback = @Sendable (borrowing Packet) -> WorkstreamPreference

/// Which packets must stay in order, and so which workstream handles a packet
/// (FreeBSD's `NETISR_POLICY_*`).
public enum OrderingPolicy: Sendable {
    /// Keep each source's packets in order: workstream = source id mod N.
    case source
    /// Keep each flow's packets in order: workstream = flow id mod N. A packet with no flow id
    /// gets one from the callback; with none, it falls back to source ordering.
    case flow(FlowIDCallback? = nil)
    /// The protocol chooses the workstream for every packet.
    case cpu(WorkstreamCallback)

    /// The name `netstat -Q` prints: `source`, `flow` or `cpu`.
    public var name: String {
        switch self {
        case .source: "source"
        case .flow: "flow"
        case .cpu: "cpu"
        }
    }
}

/// What to do when the target queue is full.
public enum QueueFullAction: Sendable {
    /// Drop the packet and count it (drop-tail, right for live sources).
    case drop
    /// Wait for room and count the wait (lossless, for sources that can wait, such as a file): a
    /// short spin, then asleep until the worker frees a slot or the engine stops.
    case wait
}

/// Why a packet was not handled.
public enum DropReason: String, Sendable, CaseIterable {
    /// Nothing is registered for the protocol (the seed's `ENXIO`).
    case noHandler = "no-handler"
    /// The queue was at its limit (the seed's `ENOBUFS`).
    case queueFull = "queue-full"
    /// Still queued when the protocol was unregistered.
    case drainedAtUnregister = "drained-at-unregister"
    /// Still queued, or offered while waiting for room, when the engine stopped.
    case discardedAtStop = "discarded-at-stop"
}

/// What happened to one dispatched packet.
public enum DispatchOutcome: Sendable, Equatable {
    /// The handler ran in the caller's thread (direct, or hybrid on an idle workstream).
    case handled
    /// The packet was queued for a workstream.
    case queued
    /// The packet was dropped, released and counted.
    case dropped(DropReason)
}

/// What happened to a batch of dispatched packets.
public struct BatchOutcome: Sendable, Equatable {
    /// Packets handled in the caller's thread.
    public var handled = 0
    /// Packets queued for workstreams.
    public var queued = 0
    /// Packets dropped because nothing is registered.
    public var droppedNoHandler = 0
    /// Packets dropped at a full queue.
    public var droppedQueueFull = 0
    /// Packets dropped because the engine stopped while the caller waited for room.
    public var droppedStopped = 0

    /// Creates an empty outcome.
    public init() {}

    /// Adds another outcome's counts.
    public mutating func add(_ other: BatchOutcome) {
        handled += other.handled
        queued += other.queued
        droppedNoHandler += other.droppedNoHandler
        droppedQueueFull += other.droppedQueueFull
        droppedStopped += other.droppedStopped
    }

    /// Every packet the batch held.
    public var total: Int { handled + queued + droppedNoHandler + droppedQueueFull + droppedStopped }
}
