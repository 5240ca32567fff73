// PacketBatch: a caller-owned, fixed-capacity container for handing packets to the engine in
// bursts. Its storage is allocated once and reused, so a producer that refills the same batch
// allocates nothing per packet.

/// A bounded batch of packets to dispatch together.
///
/// Fill it with `append(_:)`, hand it to ``NetISR/dispatch(_:batch:whenFull:)``; the engine moves
/// every packet out and the batch is empty and reusable afterwards.
///
/// Thread-safety: owned by one thread at a time, like the packets in it.
public struct PacketBatch: ~Copyable {
    @usableFromInline let storage: UnsafeMutablePointer<Packet>
    /// How many packets the batch can hold.
    public let capacity: Int
    @usableFromInline var storedCount: Int
    /// How many packets the batch holds now.
    @inlinable public var count: Int { storedCount }

    /// Creates an empty batch that can hold `capacity` packets (at least 1).
    public init(capacity: Int = 32) {
        self.capacity = max(1, capacity)
        self.storage = .allocate(capacity: self.capacity)
        self.storedCount = 0
    }

    /// Whether the batch holds no packet.
    @inlinable public var isEmpty: Bool { count == 0 }

    /// Whether the batch holds `capacity` packets.
    @inlinable public var isFull: Bool { count == capacity }

    /// Adds a packet at the end.
    ///
    /// - Returns: `nil` when the packet was added, or the packet itself when the batch is full
    ///   (a full batch is a normal result, not an error).
    @inlinable
    public mutating func append(_ packet: consuming Packet) -> Packet? {
        guard storedCount < capacity else { return packet }
        (storage + storedCount).initialize(to: packet)
        storedCount += 1
        return nil
    }

    /// Releases every packet in the batch.
    public mutating func removeAll() {
        storage.deinitialize(count: storedCount)
        storedCount = 0
    }

    /// Gives the engine the packets: `body` must move out (or deinitialize) all `count` of them.
    mutating func withPacketsMovedOut<R>(_ body: (UnsafeMutablePointer<Packet>, Int) -> R) -> R {
        let taken = storedCount
        storedCount = 0
        return body(storage, taken)
    }

    deinit {
        storage.deinitialize(count: storedCount)
        storage.deallocate()
    }
}
