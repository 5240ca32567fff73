// EngineCore: the engine's shared state, owned jointly by the public `NetISR` handle and the
// worker threads (so the handle can be dropped while workers finish).
//
// Locking:
// - `control` (a Lock) serializes every control call: register, unregister, queue limits,
//   start, stop, snapshots. It protects `ControlState`. The packet path never takes it.
// - `giant` (a Lock) is the global lock non-concurrency-safe handlers run under (S2).
// - `contexts` (a Lock) guards the list of ProducerContexts; a thread takes it once, the first
//   time it dispatches to this engine.
// - The packet path reads protocol slots inside `gate` (see ReaderGate) and otherwise uses only
//   atomics (PacketRing, Workstream) and its own ProducerContext.
// - No handler is called with `contexts` held, nor with `control` held except by `stop`, which
//   joins the workers and then, under `control`, runs the passes that handle what no worker
//   took (hence: no control call from a handler). `giant` is held only around handler calls.

import CNetISRShim
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// How `stop` treats packets still queued.
public enum StopMode: Sendable {
    /// Everything queued is handled — by the workers, or by the stopping thread when none run —
    /// then the workers exit.
    case drain
    /// Workers exit at once; queued packets are released and counted as discarded.
    case discard
}

struct ControlState {
    var registered: [RegisteredProtocol?]
    /// Per protocol: producer-side counts at registration (or at the last clear of queue drops),
    /// so per-registration rows start from zero as FreeBSD's do.
    var baselines: [[Int]]
    /// Worker-side counts of registrations since unregistered.
    var retiredHandled = 0
    var retiredSoftwareInterrupts = 0
    var started = false
    var threads: [pthread_t] = []
    var warnedLateSerialization = false
}

struct ContextRegistry {
    var all: [ProducerContext] = []
    var byThread: [UInt: ProducerContext] = [:]
}

final class EngineCore: @unchecked Sendable {  // unchecked: all mutable state is atomic or under a lock
    private static let nextID = Atomic<UInt64>(1)

    let id: UInt64
    let configuration: NetISRConfiguration
    /// Workstreams advance only when told (the deterministic test engine).
    let isManual: Bool
    let workstreams: [Workstream]
    let slots: [ProtocolSlot]
    /// The same objects, read on the packet path without reference counting.
    let workstreamTable: UnretainedArray<Workstream>
    let slotTable: UnretainedArray<ProtocolSlot>
    /// Where source and flow ordering place packets (`id mod workstreams.count`, without dividing).
    let map: WorkstreamMap
    let gate = ReaderGate()
    let giant = Lock<Void>(())
    let control: Lock<ControlState>
    let contexts = Lock(ContextRegistry())
    let ringCapacity: Int

    let defaultPolicy: Atomic<Int>
    let serializeAll: Atomic<Bool>
    /// Bit N set while protocol N is registered; workers look for queued packets there.
    let registeredMask = Atomic<UInt64>(0)
    /// Workers run and lossless producers may wait.
    let isRunning = Atomic<Bool>(false)
    /// 0: run; 1: stop after draining; 2: stop now.
    let stopRequest = Atomic<Int>(0)
    let lateSerializationRequests = Atomic<Int>(0)
    let discardedAtStop = Atomic<Int>(0)
    let drainedAtUnregister = Atomic<Int>(0)

    init(configuration: NetISRConfiguration, isManual: Bool) throws(NetISRError) {
        try configuration.validate()
        self.id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.configuration = configuration
        self.isManual = isManual
        let cpus = Int(netisr_available_cpus())
        self.workstreams = (0..<configuration.workstreamCount).map {
            Workstream(id: $0, cpu: $0 % cpus, isBound: configuration.bindThreads && !isManual)
        }
        self.slots = (0..<configuration.maximumProtocols).map { _ in ProtocolSlot() }
        self.workstreamTable = UnretainedArray(workstreams)
        self.slotTable = UnretainedArray(slots)
        self.map = WorkstreamMap(workstreamCount: configuration.workstreamCount)
        self.control = Lock(
            ControlState(
                registered: Array(repeating: nil, count: configuration.maximumProtocols),
                baselines: Array(repeating: [], count: configuration.maximumProtocols)))
        self.ringCapacity = configuration.maximumQueueLimit
        self.defaultPolicy = Atomic(DispatchPolicy.allCases.firstIndex(of: configuration.dispatchPolicy)!)
        self.serializeAll = Atomic(configuration.serializeAllHandlers)
    }

    func warn(_ message: String) {
        configuration.warningHandler(message)
    }

    var dispatchPolicy: DispatchPolicy {
        get { DispatchPolicy.allCases[defaultPolicy.load(ordering: .relaxed)] }
        set { defaultPolicy.store(DispatchPolicy.allCases.firstIndex(of: newValue)!, ordering: .relaxed) }
    }

    // MARK: Producer contexts

    /// Runs `body` with the calling thread's context (made on first use), not retained: the
    /// engine keeps every context for its lifetime.
    @inline(__always)
    func withContext<Result>(_ body: (ProducerContext) -> Result) -> Result {
        let raw = netisr_thread_cached_context(id) ?? registerThread()
        return Unmanaged<ProducerContext>.fromOpaque(raw)._withUnsafeGuaranteedRef(body)
    }

    private func registerThread() -> UnsafeRawPointer {
        let thread = UInt(pthread_self())
        let context = contexts.withLock { registry in
            if let existing = registry.byThread[thread] { return existing }
            let made = ProducerContext(protocols: slots.count, workstreams: workstreams.count)
            registry.all.append(made)
            registry.byThread[thread] = made
            return made
        }
        let raw = UnsafeRawPointer(Unmanaged.passUnretained(context).toOpaque())
        netisr_thread_cache(id, raw)
        return raw
    }

    var allContexts: [ProducerContext] { contexts.withLock { $0.all } }

    /// Sums a producer-side counter over every thread.
    func sum(_ kind: ProducerContext.Kind, _ number: Int, _ workstream: Int) -> Int {
        allContexts.reduce(0) { $0 + $1.value(kind, number, workstream) }
    }

    // MARK: Lifecycle

    func start() throws(NetISRError) {
        let result: Result<Void, NetISRError> = control.withLock { state in
            if state.started { return .failure(NetISRError(.alreadyStarted, "the engine is already running")) }
            stopRequest.store(0, ordering: .sequentiallyConsistent)
            isRunning.store(true, ordering: .sequentiallyConsistent)
            state.started = true
            if isManual { return .success(()) }
            var startFlags: [WorkerStarted] = []
            for workstream in workstreams {
                let started = WorkerStarted()
                startFlags.append(started)
                switch WorkerThread.spawn(core: self, workstream: workstream, started: started) {
                case .success(let thread): state.threads.append(thread)
                case .failure(let error):
                    isRunning.store(false, ordering: .sequentiallyConsistent)
                    stopRequest.store(2, ordering: .sequentiallyConsistent)
                    for workstream in workstreams { workstream.signal.signal() }
                    for thread in state.threads { pthread_join(thread, nil) }
                    state.threads = []
                    state.started = false
                    return .failure(error)
                }
            }
            // Return once every worker runs, so no thread set-up overlaps the caller's traffic.
            for started in startFlags {
                while !started.flag.load(ordering: .acquiring) { sched_yield() }
            }
            return .success(())
        }
        try result.get()
    }

    /// Stops the workers (if running), then leaves no packet queued: with `.drain` the calling
    /// thread handles what the workers did not — everything, for an engine never started or
    /// dispatched to after a stop — and with `.discard` what is left is released and counted.
    func stop(_ mode: StopMode) {
        control.withLock { state in
            if state.started {
                isRunning.store(false, ordering: .sequentiallyConsistent)
                stopRequest.store(mode == .drain ? 1 : 2, ordering: .sequentiallyConsistent)
                for workstream in workstreams { workstream.signal.signal() }
                for registered in state.registered.compactMap({ $0 }) { registered.wakeRoomWaiters() }
                for thread in state.threads { pthread_join(thread, nil) }
                state.threads = []
                state.started = false
            }
            // No worker runs now: this thread is the only consumer of every ring.
            if mode == .drain {
                while workstreams.contains(where: { runPass($0) }) {}
            }
            for registered in state.registered.compactMap({ $0 }) {
                for queue in registered.queues.elements {
                    if let discarded = queue.ring?.discardAll(), discarded > 0 {
                        discardedAtStop.wrappingAdd(discarded, ordering: .relaxed)
                    }
                }
            }
            for workstream in workstreams {
                workstream.pending.store(0, ordering: .relaxed)
                workstream.carry = 0
            }
        }
    }

    // MARK: Serialization (S2, S3)

    func requireSerialization(by component: String) {
        control.withLock { state in
            if !state.started {
                if !serializeAll.load(ordering: .relaxed) {
                    warn("\(component) is not concurrency-safe: every handler now runs under the global lock")
                }
                serializeAll.store(true, ordering: .relaxed)
            } else {
                lateSerializationRequests.wrappingAdd(1, ordering: .relaxed)
                if !state.warnedLateSerialization {
                    state.warnedLateSerialization = true
                    warn(
                        "\(component) is not concurrency-safe but the engine is already running; "
                            + "set serializeAllHandlers in the configuration (or call requireSerialization "
                            + "before start()) to run every handler under the global lock")
                } else {
                    warn("\(component) is not concurrency-safe (late request, ignored)")
                }
            }
        }
    }
}
