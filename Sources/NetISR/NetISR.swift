// NetISR: the public handle of the engine (FreeBSD's netisr as a library).
//
// Protocols register a handler; packets are dispatched to it directly in the caller or queued
// to worker threads ("workstreams"), ordered per source, per flow or per CPU; every packet is
// handled or dropped with a counted reason. See EngineCore for the locking rules and
// EngineCore+Dispatch / EngineCore+Worker for the two halves of the packet path.
//
// Ordering guarantee: packets of one flow (or source, for source ordering) dispatched by one
// thread are handled in dispatch order, whatever the dispatch policy — except across a live
// change of that protocol's dispatch policy from deferred/hybrid to direct, where a direct
// packet may overtake packets still queued. There is no order between different threads.

/// A packet dispatch engine: protocol handlers, bounded queues and worker threads.
///
/// ```swift
/// let engine = try NetISR(configuration: NetISRConfiguration(workstreamCount: 2))
/// try engine.register(.perPacket(name: "ip", number: 1, ordering: .flow()) { packet, _ in
///     _ = packet.wireLength
/// })
/// try engine.start()
/// _ = engine.dispatch(1, Packet(sourceID: 0, flowID: 42))
/// engine.stop(.drain)
/// ```
///
/// Thread-safety: every method may be called from any thread. Control calls (register,
/// unregister, limits, start, stop, snapshot) are serialized among themselves and must not be
/// called from inside a handler (`stop` waits for handlers, and runs some itself). The packet
/// path (dispatch, queue, schedule) takes no lock.
public final class NetISR: Sendable {
    let core: EngineCore

    /// Makes an engine; workers start with ``start()``.
    public init(configuration: NetISRConfiguration = NetISRConfiguration()) throws(NetISRError) {
        core = try EngineCore(configuration: configuration, isManual: false)
    }

    /// Makes an engine whose workstreams run only when told (for the deterministic test engine).
    package init(manualConfiguration configuration: NetISRConfiguration) throws(NetISRError) {
        core = try EngineCore(configuration: configuration, isManual: true)
    }

    deinit {
        core.stop(.discard)
    }

    // MARK: Lifecycle

    /// Starts one worker thread per workstream.
    public func start() throws(NetISRError) { try core.start() }

    /// Stops the workers. With `.drain` everything queued is handled first (by the calling thread
    /// for an engine never started, or for packets dispatched since the last stop); with
    /// `.discard` queued packets are released and counted as discarded. Either way no packet is
    /// left queued when it returns, unless another thread dispatches meanwhile: packets
    /// dispatched to a stopped engine wait in their queues (or are dropped when these are full)
    /// until the next `start` or `stop`. The engine can be started again.
    public func stop(_ mode: StopMode = .drain) { core.stop(mode) }

    // MARK: Registration

    /// Registers a protocol.
    ///
    /// - Throws: ``NetISRError/Code-swift.struct/protocolOutOfRange``, ``NetISRError/Code-swift.struct/protocolTaken``,
    ///   ``NetISRError/Code-swift.struct/invalidRegistration``. A queue limit above the maximum is
    ///   capped with a warning.
    public func register(_ registration: ProtocolRegistration) throws(NetISRError) {
        try core.register(registration)
    }

    /// Unregisters a protocol. Returns once no call of its handler is running or will run; packets
    /// still queued for it are released and counted as drained. Must not be called from a handler.
    ///
    /// The wait costs the packet path nothing: on Linux 4.14 and later, unregister makes every
    /// thread of the process pass a memory barrier (`membarrier`) instead of each dispatch paying
    /// a fence; where that call is refused, or with `NETISR_FENCED_GATE=1` in the environment,
    /// each dispatch call pays one.
    public func unregister(_ number: ProtocolNumber) throws(NetISRError) {
        try core.unregister(number)
    }

    /// A protocol's queue limit (per workstream).
    public func queueLimit(of number: ProtocolNumber) throws(NetISRError) -> Int {
        try core.queueLimit(number)
    }

    /// Sets a protocol's queue limit; above the configured maximum is an error.
    public func setQueueLimit(of number: ProtocolNumber, to limit: Int) throws(NetISRError) {
        try core.setQueueLimit(number, limit)
    }

    /// Packets a protocol dropped at full queues since registration or the last clear.
    public func queueDrops(of number: ProtocolNumber) throws(NetISRError) -> Int {
        try core.queueDrops(number)
    }

    /// Zeroes a protocol's queue-drop counters (engine totals keep the count).
    public func clearQueueDrops(of number: ProtocolNumber) throws(NetISRError) {
        try core.clearQueueDrops(number)
    }

    /// The engine-wide dispatch policy; protocols without their own follow it. Changeable at run time.
    public var dispatchPolicy: DispatchPolicy {
        get { core.dispatchPolicy }
        set { core.dispatchPolicy = newValue }
    }

    /// Declares that `component` is not concurrency-safe. Before ``start()`` this switches the
    /// engine to running every handler under the global lock, with a warning; after it, the
    /// request is only warned about (with advice the first time) and counted.
    public func requireSerialization(by component: String) {
        core.requireSerialization(by: component)
    }

    // MARK: Packet path

    /// Dispatches a packet under the protocol's dispatch policy.
    ///
    /// - Returns: handled in the caller, queued, or dropped (released and counted).
    @discardableResult
    public func dispatch(
        _ number: ProtocolNumber, _ packet: consuming Packet, whenFull: QueueFullAction = .drop
    ) -> DispatchOutcome {
        core.dispatch(number, packet, whenFull: whenFull, alwaysQueue: false)
    }

    /// Dispatches every packet of `batch` (which is empty afterwards), grouping them per
    /// workstream so each group is queued with one reservation or handled in one call.
    @discardableResult
    public func dispatch(
        _ number: ProtocolNumber, batch: inout PacketBatch, whenFull: QueueFullAction = .drop
    ) -> BatchOutcome {
        batch.withPacketsMovedOut { base, count in
            core.dispatchRun(number, base, count, whenFull: whenFull, alwaysQueue: false)
        }
    }

    /// Hands every packet left in `burst` on to the protocol `next` names for it, one dispatch per
    /// protocol and workstream — how a link-layer handler feeds the network layer (FreeBSD's
    /// `ether_demux` calling `netisr_dispatch`) without paying a dispatch per packet.
    ///
    /// Packets keep their order within each protocol.
    @discardableResult
    public func dispatch(
        _ burst: inout PacketBurst, whenFull: QueueFullAction = .drop,
        to next: (borrowing Packet) -> ProtocolNumber
    ) -> BatchOutcome {
        let (base, count) = burst.takeRemaining()
        guard let base, count > 0 else { return BatchOutcome() }
        return core.dispatchByProtocol(base, count, whenFull: whenFull, next: next)
    }

    /// Queues a packet for a workstream whatever the dispatch policy (the seed's `netisr_queue`).
    ///
    /// - Returns: `.queued`, `.dropped(.noHandler)` (ENXIO) or `.dropped(.queueFull)` (ENOBUFS).
    @discardableResult
    public func queue(
        _ number: ProtocolNumber, _ packet: consuming Packet, whenFull: QueueFullAction = .drop
    ) -> DispatchOutcome {
        core.dispatch(number, packet, whenFull: whenFull, alwaysQueue: true)
    }

    /// Queues every packet of `batch` whatever the dispatch policy.
    @discardableResult
    public func queue(
        _ number: ProtocolNumber, batch: inout PacketBatch, whenFull: QueueFullAction = .drop
    ) -> BatchOutcome {
        batch.withPacketsMovedOut { base, count in
            core.dispatchRun(number, base, count, whenFull: whenFull, alwaysQueue: true)
        }
    }

    /// Makes workstream `workstream`'s worker call the protocol's handler: with an empty burst for a
    /// protocol without a queue (a software interrupt, S8), otherwise to drain its queue there.
    ///
    /// - Returns: `false` if nothing is registered under `number`.
    @discardableResult
    public func schedule(_ number: ProtocolNumber, workstream: Int = 0) -> Bool {
        core.schedule(number, workstream: workstream)
    }

    // MARK: Observation

    /// The engine's configuration, registrations and counters now.
    public func snapshot() -> NetISRSnapshot { core.snapshot() }

    /// The number of workstreams.
    public var workstreamCount: Int { core.workstreams.count }

    /// Where source and flow ordering place packets among the workstreams.
    public var workstreamMap: WorkstreamMap { core.map }
}

extension NetISR {
    /// Runs one pass of a workstream in the calling thread (manual engines only).
    package func runManualPass(workstream: Int) -> Bool {
        precondition(core.isManual, "only a manual engine is advanced by hand")
        return core.runPass(core.workstreams[workstream])
    }
}
