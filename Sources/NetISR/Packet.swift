// Packet: the unit the engine moves, and who gets its bytes back.
//
// A `Packet` is `~Copyable`: exactly one party owns it at any time, and its `deinit` hands the
// bytes back to their `PacketOwner` exactly once, whether the packet was handled, dropped,
// drained at unregister or discarded at stop. The engine never copies packet bytes; it moves
// the 48-byte descriptor through its queues.

/// Gets a packet's bytes back when the packet is released.
///
/// Subclass it for a buffer pool, a capture ring block or a file chunk. `release(_:)` is called
/// exactly once per packet, from whichever thread ends the packet's life (a handler, a worker,
/// or the dispatching thread on a drop), so it must be thread-safe.
///
/// The packet holds an unowned reference: keep the owner alive for as long as any of its packets
/// can exist (for example for the engine's lifetime).
open class PacketOwner: @unchecked Sendable {
    /// Creates an owner.
    public init() {}

    /// Called once when a packet whose bytes belong to this owner is released.
    open func release(_ bytes: UnsafeRawBufferPointer) {}
}

/// One packet: a view of its bytes plus the metadata the engine orders and places it by.
///
/// Mirrors the parts of FreeBSD's `mbuf` packet header that netisr reads: the receiving interface
/// (here `sourceID`), the flow id (`m_pkthdr.flowid` with `M_HASHTYPE`) and the length.
///
/// Thread-safety: a packet is owned by one party at a time; it moves between threads only through
/// the engine's queues, which publish it safely.
public struct Packet: ~Copyable {
    /// The captured bytes. Valid until the packet is released.
    public let bytes: UnsafeRawBufferPointer
    /// The length of the packet on the wire (at least `bytes.count` for a well-formed capture).
    public var wireLength: UInt32
    /// Where the packet came from (an interface, a file, a producer). Source ordering keeps one
    /// source's packets in order by mapping it to one workstream.
    public var sourceID: UInt32
    @usableFromInline var storedFlowID: UInt32
    @usableFromInline var hasFlowID: Bool
    /// What the producer already knows of the packet's kind, in the producer's own numbering (0:
    /// nothing). A receive path that classified the frame to hash it — as NICs report a packet
    /// type with the RSS hash — leaves its finding here for the handlers, which then need not
    /// parse again to demultiplex. The engine carries it unchanged.
    public var packetType: UInt8
    /// Capture time in nanoseconds since the Unix epoch (0 when unknown).
    public var timestamp: UInt64
    /// Unretained: neither making nor releasing a packet touches the owner's reference count
    /// (a count the producer and a worker would otherwise bounce between their caches).
    @usableFromInline let owner: Unmanaged<PacketOwner>?

    /// Creates a packet over `bytes`, which stay valid until `owner.release(_:)` is called.
    ///
    /// - Parameters:
    ///   - bytes: the captured bytes; with no owner they must outlive the packet.
    ///   - wireLength: the length on the wire; `nil` means `bytes.count`.
    ///   - sourceID: the source the packet came from.
    ///   - flowID: a flow id (for example an RSS hash), if known.
    ///   - timestamp: capture time in nanoseconds since the epoch.
    ///   - packetType: the producer's classification of the packet (see `packetType`).
    ///   - owner: gets the bytes back when the packet is released; must outlive the packet.
    @inlinable
    public init(
        bytes: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        wireLength: UInt32? = nil,
        sourceID: UInt32 = 0,
        flowID: UInt32? = nil,
        timestamp: UInt64 = 0,
        packetType: UInt8 = 0,
        owner: PacketOwner? = nil
    ) {
        self.bytes = bytes
        self.wireLength = wireLength ?? UInt32(truncatingIfNeeded: bytes.count)
        self.sourceID = sourceID
        self.storedFlowID = flowID ?? 0
        self.hasFlowID = flowID != nil
        self.packetType = packetType
        self.timestamp = timestamp
        self.owner = owner.map { Unmanaged.passUnretained($0) }
    }

    /// The flow id, if one is known; flow ordering places the packet by it.
    public var flowID: UInt32? {
        @inlinable get { hasFlowID ? storedFlowID : nil }
        @inlinable set {
            storedFlowID = newValue ?? 0
            hasFlowID = newValue != nil
        }
    }

    /// Ends the packet's life now, handing its bytes back to its owner.
    @inlinable
    public consuming func release() {}

    deinit {
        owner?._withUnsafeGuaranteedRef { $0.release(bytes) }
    }
}
