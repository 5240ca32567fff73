// RegisteredProtocol: an immutable registration as the packet path sees it, with its queues.
//
// The registration's parts are stored flat (kind of ordering, callbacks, handler) so the packet
// path never copies the `ProtocolRegistration` struct or an enum with closure payloads, which
// would retain and release them per packet.
//
// Published in a ProtocolSlot through an atomic unmanaged pointer; the engine's control state
// keeps the strong reference. A reader (inside the ReaderGate) may use the object until it
// exits the gate; unregister unpublishes it, waits for the gate, and only then drains its queues
// and lets it go.

import Synchronization

final class RegisteredProtocol: Sendable {
    enum OrderingKind: UInt8 {
        case source, flow, cpu
    }

    let registration: ProtocolRegistration
    let number: Int
    let handler: PacketHandler
    let orderingKind: OrderingKind
    let flowCallback: FlowIDCallback?
    let cpuCallback: WorkstreamCallback?
    let dispatchOverride: DispatchPolicy?
    let drained: DrainedCallback?
    let hasQueue: Bool
    /// The handler must run under the global lock and is never directly dispatched.
    let needsGiant: Bool
    let queueLimit: Atomic<Int>
    /// One per workstream, in workstream order.
    let queues: UnretainedArray<WorkstreamQueue>

    init(registration: ProtocolRegistration, needsGiant: Bool, queueLimit: Int, ringCapacity: Int, workstreams: Int) {
        self.registration = registration
        self.number = registration.number.rawValue
        self.handler = registration.handler
        switch registration.ordering {
        case .source:
            (orderingKind, flowCallback, cpuCallback) = (.source, nil, nil)
        case .flow(let callback):
            (orderingKind, flowCallback, cpuCallback) = (.flow, callback, nil)
        case .cpu(let callback):
            (orderingKind, flowCallback, cpuCallback) = (.cpu, nil, callback)
        }
        self.dispatchOverride = registration.dispatchPolicy
        self.drained = registration.drained
        self.hasQueue = registration.hasQueue
        self.needsGiant = needsGiant
        self.queueLimit = Atomic(queueLimit)
        self.queues = UnretainedArray(
            (0..<workstreams).map { _ in
                WorkstreamQueue(
                    ring: registration.hasQueue ? PacketRing(capacityAtLeast: ringCapacity, limit: queueLimit) : nil)
            })
    }

    /// Wakes every producer asleep for room in its queues (when the engine stops or it goes).
    func wakeRoomWaiters() {
        for queue in queues.elements { queue.ring?.wakeRoomWaiters() }
    }
}

/// One protocol number's slot. The pointer is published with sequentially consistent stores and
/// read inside the ReaderGate.
final class ProtocolSlot: Sendable {
    let current = Atomic<Unmanaged<RegisteredProtocol>?>(nil)
    /// Packets offered to this number while nothing was registered.
    let noHandlerDrops = Atomic<Int>(0)

    /// Whether `registered` is still the one published here.
    func holds(_ registered: RegisteredProtocol) -> Bool {
        current.load(ordering: .sequentiallyConsistent)?.toOpaque() == Unmanaged.passUnretained(registered).toOpaque()
    }
}
