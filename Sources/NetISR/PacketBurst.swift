// PacketBurst: the packets a handler receives in one call. It is a view over engine-owned
// storage (a queue's slots, or the caller's batch in direct dispatch); the handler takes packets
// out with `next()`, and whatever it leaves is released when the burst ends.

/// The packets one handler call receives, in order.
///
/// Take each packet with ``next()`` to keep or forward it; packets not taken are released when
/// the handler returns. A burst is empty for a protocol registered without a queue (a software
/// interrupt, FreeBSD's `nh_handler` called with no mbuf).
///
/// Thread-safety: valid only during the handler call that receives it; do not store it.
public struct PacketBurst: ~Copyable {
    @usableFromInline let base: UnsafeMutablePointer<Packet>?
    /// How many packets the burst started with.
    public let count: Int
    @usableFromInline var taken: Int
    /// The workstream this burst is handled on.
    public let workstreamID: Int

    init(base: UnsafeMutablePointer<Packet>?, count: Int, workstreamID: Int) {
        self.base = base
        self.count = count
        self.taken = 0
        self.workstreamID = workstreamID
    }

    /// Whether the burst holds no packet at all (a software interrupt).
    @inlinable public var isEmpty: Bool { count == 0 }

    /// How many packets are still to be taken.
    @inlinable public var remaining: Int { count - taken }

    /// Takes the next packet, or returns `nil` when all have been taken.
    @inlinable
    public mutating func next() -> Packet? {
        guard taken < count, let base else { return nil }
        let packet = (base + taken).move()
        taken += 1
        return packet
    }

    /// Reads the next packet without taking it.
    @inlinable
    public func peek<R>(_ body: (borrowing Packet) -> R) -> R? {
        guard taken < count, let base else { return nil }
        return body(base[taken])
    }

    /// Reads the packet `distance` places after the next one without taking it (nil past the
    /// end); `peek(ahead: 0)` is `peek`. For prefetching a later packet's bytes while handling
    /// this one: its first touch on a worker is a miss, its bytes having been written on another
    /// core.
    @inlinable
    public func peek<R>(ahead distance: Int, _ body: (borrowing Packet) -> R) -> R? {
        guard distance >= 0, taken + distance < count, let base else { return nil }
        return body(base[taken + distance])
    }

    /// Takes every packet not yet taken, for the engine to move out.
    mutating func takeRemaining() -> (base: UnsafeMutablePointer<Packet>?, count: Int) {
        let start = taken
        taken = count
        return (base.map { $0 + start }, count - start)
    }

    deinit {
        if let base, taken < count {
            (base + taken).deinitialize(count: count - taken)
        }
    }
}
