// NetISRSnapshot: a copy of the engine's configuration, registrations and counters at one
// moment — what `netstat -Q` and `sysctl net.isr` show. Each counter is exact; taken while
// traffic flows, the counters are not from one instant.

/// The engine's state and counters at one moment.
public struct NetISRSnapshot: Sendable, Equatable {
    /// The `Configuration:` section.
    public struct Configuration: Sendable, Equatable {
        /// Workstreams (threads).
        public var workstreamCount: Int
        /// The most workstreams this engine can have (fixed when it is made).
        public var maximumWorkstreams: Int
        /// Default queue limit.
        public var defaultQueueLimit: Int
        /// Maximum queue limit.
        public var maximumQueueLimit: Int
        /// Engine-wide dispatch policy.
        public var dispatchPolicy: DispatchPolicy
        /// Whether worker threads are bound to CPUs.
        public var threadsBound: Bool
        /// Whether workers poll instead of sleeping.
        public var pollMode: Bool
        /// Whether every handler runs under the global lock.
        public var serializeAllHandlers: Bool
    }

    /// One row of the `Protocols:` section.
    public struct ProtocolInfo: Sendable, Equatable {
        /// Name.
        public var name: String
        /// Protocol number.
        public var number: Int
        /// Queue limit (0 for a protocol without a queue).
        public var queueLimit: Int
        /// Ordering policy name: source, flow or cpu.
        public var ordering: String
        /// The protocol's own dispatch policy, or `nil` when it follows the engine ("default").
        public var dispatchPolicy: DispatchPolicy?
        /// Has a CPU callback (flag C).
        public var hasCPUCallback: Bool
        /// Has a drained callback (flag D).
        public var hasDrainedCallback: Bool
        /// Has a flow-id callback (flag F).
        public var hasFlowCallback: Bool
        /// Whether the handler may run concurrently (false: under the global lock).
        public var isConcurrencySafe: Bool
    }

    /// One row of the `Workstreams:` section: one protocol on one workstream
    /// (FreeBSD's `struct sysctl_netisr_work`).
    public struct WorkCounters: Sendable, Equatable {
        /// Workstream id.
        public var workstream: Int
        /// The CPU of that workstream.
        public var cpu: Int
        /// Protocol name.
        public var name: String
        /// Protocol number.
        public var number: Int
        /// Packets queued now (`nw_len`).
        public var length: Int
        /// Highest queue length seen (`nw_watermark`).
        public var watermark: Int
        /// Packets handled directly in the caller (`nw_dispatched`).
        public var dispatched: Int
        /// Packets handled in the caller by hybrid dispatch (`nw_hybrid_dispatched`).
        public var hybridDispatched: Int
        /// Packets dropped at a full queue (`nw_qdrops`).
        public var queueDrops: Int
        /// Packets queued (`nw_queued`).
        public var queued: Int
        /// Packets handled, directly or from the queue (`nw_handled`).
        public var handled: Int
    }

    /// A workstream's own counters.
    public struct WorkstreamInfo: Sendable, Equatable {
        /// Workstream id.
        public var id: Int
        /// Its CPU.
        public var cpu: Int
        /// Times its worker woke from sleep.
        public var wakeups: Int
        /// Passes over pending protocols.
        public var passes: Int
    }

    /// Engine-wide totals, including protocols since unregistered (the seed's `isrstat`).
    public struct Totals: Sendable, Equatable {
        /// Packets handled in the caller by direct dispatch.
        public var dispatched = 0
        /// Packets handled in the caller by hybrid dispatch.
        public var hybridDispatched = 0
        /// Packets queued.
        public var queued = 0
        /// Packets handled (caller and workers).
        public var handled = 0
        /// Packets dropped at a full queue.
        public var queueDrops = 0
        /// Packets dropped for want of a handler (the seed's `isrs_drop`).
        public var noHandlerDrops = 0
        /// Packets released at unregister.
        public var drainedAtUnregister = 0
        /// Packets released at stop (queued, or waiting for room).
        public var discardedAtStop = 0
        /// Packets queued now.
        public var stillQueued = 0
        /// Handler calls with no packet (software interrupts).
        public var softwareInterrupts = 0
        /// Worker wake-ups from sleep (the seed's `isrs_swi_count`).
        public var wakeups = 0
        /// Dispatch calls that had to wait for room.
        public var waits = 0
        /// Serialization requests after start (the seed's `net_mpsafe_toolate` count).
        public var lateSerializationRequests = 0
        /// Packets offered to the engine but never queued (they waited for room across a stop).
        var discardedWhileWaiting = 0

        /// Packets offered to the engine (the seed's `isrs_count`).
        public var offered: Int {
            dispatched + hybridDispatched + queued + queueDrops + noHandlerDrops + discardedWhileWaiting
        }
        /// Packets handled directly in the caller (the seed's `isrs_directed`).
        public var direct: Int { dispatched + hybridDispatched }
        /// Packets sent towards a queue (the seed's `isrs_deferred`).
        public var deferred: Int { queued + queueDrops + discardedWhileWaiting }
        /// Packets whose fate is known: handled, dropped by some reason, or still queued.
        /// Equals the packets offered when nothing was lost.
        public var accountedFor: Int {
            handled + queueDrops + noHandlerDrops + drainedAtUnregister + discardedAtStop + stillQueued
        }
    }

    /// Configuration.
    public var configuration: Configuration
    /// Registered protocols, by number.
    public var protocols: [ProtocolInfo]
    /// Workstreams.
    public var workstreams: [WorkstreamInfo]
    /// Counters per workstream × registered protocol, workstream-major.
    public var work: [WorkCounters]
    /// Engine-wide totals.
    public var totals: Totals
}

extension EngineCore {
    func snapshot() -> NetISRSnapshot {
        control.withLock { state in
            let configuration = NetISRSnapshot.Configuration(
                workstreamCount: workstreams.count, maximumWorkstreams: workstreams.count,
                defaultQueueLimit: self.configuration.defaultQueueLimit,
                maximumQueueLimit: self.configuration.maximumQueueLimit, dispatchPolicy: dispatchPolicy,
                threadsBound: workstreams.first?.isBound ?? false, pollMode: self.configuration.pollMode,
                serializeAllHandlers: serializeAll.load(ordering: .relaxed))
            let registered = state.registered.compactMap { $0 }
            let protocols = registered.map { entry in
                NetISRSnapshot.ProtocolInfo(
                    name: entry.registration.name, number: entry.number,
                    queueLimit: entry.hasQueue ? entry.queueLimit.load(ordering: .relaxed) : 0,
                    ordering: entry.registration.ordering.name, dispatchPolicy: entry.dispatchOverride,
                    hasCPUCallback: entry.cpuCallback != nil, hasDrainedCallback: entry.drained != nil,
                    hasFlowCallback: entry.flowCallback != nil, isConcurrencySafe: !entry.needsGiant)
            }
            var totals = NetISRSnapshot.Totals()
            totals.handled = state.retiredHandled
            totals.softwareInterrupts = state.retiredSoftwareInterrupts
            let contexts = allContexts
            for number in 0..<slots.count {
                for workstream in 0..<workstreams.count {
                    func all(_ kind: ProducerContext.Kind) -> Int {
                        contexts.reduce(0) { $0 + $1.value(kind, number, workstream) }
                    }
                    totals.dispatched += all(.dispatched)
                    totals.hybridDispatched += all(.hybridDispatched)
                    totals.queued += all(.queued)
                    totals.queueDrops += all(.queueDrops)
                    totals.waits += all(.waits)
                    totals.discardedWhileWaiting += all(.stoppedWhileWaiting)
                    totals.noHandlerDrops += all(.noHandler)
                }
            }
            totals.noHandlerDrops += contexts.reduce(0) { $0 + $1.outOfRangeDrops.load(ordering: .relaxed) }
            totals.handled += totals.dispatched + totals.hybridDispatched
            totals.discardedAtStop = discardedAtStop.load(ordering: .relaxed) + totals.discardedWhileWaiting
            totals.drainedAtUnregister = drainedAtUnregister.load(ordering: .relaxed)
            var work: [NetISRSnapshot.WorkCounters] = []
            for workstream in workstreams {
                for entry in registered {
                    let queue = entry.queues.elements[workstream.id]
                    let baseline = state.baselines[entry.number]
                    let counts = producerCounts(entry.number)
                    func count(_ kind: ProducerContext.Kind) -> Int {
                        let at = baselineIndex(kind, workstream.id)
                        return counts[at] - baseline[at]
                    }
                    let handledByWorker = queue.handledByWorker.load(ordering: .relaxed)
                    totals.handled += handledByWorker
                    totals.softwareInterrupts += queue.softwareInterrupts.load(ordering: .relaxed)
                    let length = queue.ring?.count ?? 0
                    totals.stillQueued += length
                    let dispatched = count(.dispatched)
                    let hybrid = count(.hybridDispatched)
                    work.append(
                        .init(
                            workstream: workstream.id, cpu: workstream.cpu, name: entry.registration.name,
                            number: entry.number, length: length,
                            watermark: queue.watermark.load(ordering: .relaxed), dispatched: dispatched,
                            hybridDispatched: hybrid, queueDrops: count(.queueDrops), queued: count(.queued),
                            handled: handledByWorker + dispatched + hybrid))
                }
            }
            totals.wakeups = workstreams.reduce(0) { $0 + $1.wakeups.load(ordering: .relaxed) }
            totals.lateSerializationRequests = lateSerializationRequests.load(ordering: .relaxed)
            let infos = workstreams.map {
                NetISRSnapshot.WorkstreamInfo(
                    id: $0.id, cpu: $0.cpu, wakeups: $0.wakeups.load(ordering: .relaxed),
                    passes: $0.passes.load(ordering: .relaxed))
            }
            return NetISRSnapshot(
                configuration: configuration, protocols: protocols, workstreams: infos, work: work, totals: totals)
        }
    }
}
