// ProtocolRegistration: everything a protocol tells the engine when it registers
// (FreeBSD's `struct netisr_handler`).

/// A handler: called with a burst of packets on one workstream.
///
/// A concurrency-safe handler may run on several workstreams and callers at once; one that is
/// not runs under the engine's global lock and is never directly dispatched.
public typealias PacketHandler = @Sendable (inout PacketBurst) -> Void

/// Called on a workstream once it has emptied this protocol's queue there
/// (FreeBSD's `nh_drainedcpu`).
public typealias DrainedCallback = @Sendable (_ workstreamID: Int) -> Void

/// A protocol's registration.
public struct ProtocolRegistration: Sendable {
    /// The name `netstat -Q` prints (at most 6 characters fit its column).
    public var name: String
    /// The slot, below the engine's `maximumProtocols`.
    public var number: ProtocolNumber
    /// The handler.
    public var handler: PacketHandler
    /// Whether the handler may run concurrently with itself and other work (FreeBSD's
    /// `NETISR_MPSAFE`). `false` serializes it under the global lock.
    public var isConcurrencySafe: Bool
    /// Whether the protocol has a packet queue. Without one it is a software interrupt with no
    /// data: ``NetISR/schedule(_:workstream:)`` makes a worker call the handler with an empty burst.
    public var hasQueue: Bool
    /// The queue limit per workstream; 0 means the engine's default, above the maximum is capped.
    public var queueLimit: Int
    /// Which packets stay in order, and so where each is handled.
    public var ordering: OrderingPolicy
    /// Overrides the engine-wide dispatch policy for this protocol; `nil` follows the engine.
    public var dispatchPolicy: DispatchPolicy?
    /// Called when a workstream has emptied this protocol's queue.
    public var drained: DrainedCallback?

    /// Creates a registration.
    public init(
        name: String,
        number: ProtocolNumber,
        isConcurrencySafe: Bool = true,
        hasQueue: Bool = true,
        queueLimit: Int = 0,
        ordering: OrderingPolicy = .source,
        dispatchPolicy: DispatchPolicy? = nil,
        drained: DrainedCallback? = nil,
        handler: @escaping PacketHandler
    ) {
        self.name = name
        self.number = number
        self.handler = handler
        self.isConcurrencySafe = isConcurrencySafe
        self.hasQueue = hasQueue
        self.queueLimit = queueLimit
        self.ordering = ordering
        self.dispatchPolicy = dispatchPolicy
        self.drained = drained
    }

    /// A registration whose handler takes one packet at a time.
    public static func perPacket(
        name: String,
        number: ProtocolNumber,
        isConcurrencySafe: Bool = true,
        queueLimit: Int = 0,
        ordering: OrderingPolicy = .source,
        dispatchPolicy: DispatchPolicy? = nil,
        handler: @escaping @Sendable (_ packet: consuming Packet, _ workstreamID: Int) -> Void
    ) -> ProtocolRegistration {
        ProtocolRegistration(
            name: name, number: number, isConcurrencySafe: isConcurrencySafe, queueLimit: queueLimit,
            ordering: ordering, dispatchPolicy: dispatchPolicy
        ) { burst in
            while let packet = burst.next() { handler(packet, burst.workstreamID) }
        }
    }
}
