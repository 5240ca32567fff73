// The workstream side: the worker thread's loop and one pass over pending protocols
// (FreeBSD's `swi_net` / `netisr_process_workstream`).
//
// A pass: take RUNNING, read-and-clear the pending bits (plus the carry of unfinished
// protocols), serve them lowest number first, each up to `quantum` packets in bursts of
// `burstSize`, then drop RUNNING. The whole pass is one ReaderGate read section on the worker's
// own stripe, so unregister waits for it. Handlers are called with no engine lock held, except
// `giant` for handlers that need it.

import CNetISRShim
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension EngineCore {
    /// Runs one pass on `workstream`. Returns whether there was anything to do.
    @discardableResult
    func runPass(_ workstream: Workstream) -> Bool {
        withContext { context in
            workstream.acquireRunning()
            defer { workstream.releaseRunning() }
            gate.enter(context)
            defer { gate.exit(context) }
            var bits = workstream.pending.exchange(0, ordering: .sequentiallyConsistent) | workstream.carry
            bits |= protocolsWithPackets(on: workstream)
            workstream.carry = 0
            if bits == 0 { return false }
            WorkstreamQueue.ownerAdd(workstream.passes, 1)
            var carry: UInt64 = 0
            while bits != 0 {
                let number = bits.trailingZeroBitCount
                bits &= bits &- 1
                // A pending bit with nothing registered is skipped (S8).
                guard number < slotTable.count,
                    let current = slotTable.with(number, { $0.current.load(ordering: .sequentiallyConsistent) })
                else { continue }
                let more = current._withUnsafeGuaranteedRef { registered in
                    registered.queues.with(workstream.id) { queue in serve(registered, queue, on: workstream) }
                }
                if more { carry |= 1 << UInt64(number) }
            }
            workstream.carry = carry
            return true
        }
    }

    /// Registered protocols whose ring on `workstream` has published packets. Call inside the gate.
    private func protocolsWithPackets(on workstream: Workstream) -> UInt64 {
        var found: UInt64 = 0
        var registered = registeredMask.load(ordering: .relaxed)
        while registered != 0 {
            let number = registered.trailingZeroBitCount
            registered &= registered &- 1
            let queued = slotTable.with(number) { slot in
                slot.current.load(ordering: .sequentiallyConsistent)?._withUnsafeGuaranteedRef { entry in
                    entry.queues.with(workstream.id) { $0.withRing { $0.count > 0 } ?? false }
                } ?? false
            }
            if queued { found |= 1 << UInt64(number) }
        }
        return found
    }

    /// Whether anything is pending or reserved on `workstream` (the last check before sleeping).
    private func hasWork(_ workstream: Workstream) -> Bool {
        if workstream.pending.load(ordering: .sequentiallyConsistent) != 0 || workstream.carry != 0 { return true }
        return withContext { context in
            gate.enter(context)
            defer { gate.exit(context) }
            return hasReservations(on: workstream.id)
        }
    }

    /// Whether any registered protocol's ring on a workstream holds a reservation (sequentially
    /// consistent). Call inside the gate.
    func hasReservations(on workstream: Int) -> Bool {
        var registered = registeredMask.load(ordering: .sequentiallyConsistent)
        while registered != 0 {
            let number = registered.trailingZeroBitCount
            registered &= registered &- 1
            let reserved = slotTable.with(number) { slot in
                slot.current.load(ordering: .sequentiallyConsistent)?._withUnsafeGuaranteedRef { entry in
                    entry.queues.with(workstream) { $0.withRing { $0.hasReservations } ?? false }
                } ?? false
            }
            if reserved { return true }
        }
        return false
    }

    /// Serves one protocol's queue on `workstream`; returns whether packets remain after the quantum.
    @inline(__always)
    private func serve(_ registered: RegisteredProtocol, _ queue: WorkstreamQueue, on workstream: Workstream) -> Bool {
        let more = queue.withRing { ring in serve(registered, queue, ring, on: workstream) }
        guard let more else {
            var burst = PacketBurst(base: nil, count: 0, workstreamID: workstream.id)
            callHandler(registered, &burst)
            WorkstreamQueue.ownerAdd(queue.softwareInterrupts, 1)
            return false
        }
        return more
    }

    @inline(__always)
    private func serve(
        _ registered: RegisteredProtocol, _ queue: WorkstreamQueue, _ ring: PacketRing, on workstream: Workstream
    ) -> Bool {
        var served = 0
        while served < configuration.quantum {
            let run = ring.peek(maximum: configuration.burstSize)
            if run.count == 0 { break }
            var burst = PacketBurst(base: run.base, count: run.count, workstreamID: workstream.id)
            callHandler(registered, &burst)
            _ = consume burst
            ring.advance(by: run.count)
            WorkstreamQueue.ownerAdd(queue.handledByWorker, run.count)
            served += run.count
        }
        if ring.count > 0 { return true }
        registered.drained?(workstream.id)
        return false
    }

    /// Calls a handler, under the global lock when it needs it.
    @inline(__always)
    func callHandler(_ registered: RegisteredProtocol, _ burst: inout PacketBurst) {
        if registered.needsGiant || serializeAll.load(ordering: .relaxed) {
            giant.withLock { _ in registered.handler(&burst) }
        } else {
            registered.handler(&burst)
        }
    }

    /// Polls up to `spins` times for work before the worker sleeps; returns whether work arrived.
    /// It yields the CPU between polls, so on a machine with more threads than cores (a reader and
    /// two workers on two CPUs) the producer it waits for gets to run.
    private func spinUntilWork(_ workstream: Workstream, spins: Int) -> Bool {
        for spin in 0..<spins {
            if spin % 16 == 15 { sched_yield() } else { netisr_cpu_relax() }
            if spin % 64 == 63 && hasWork(workstream) { return true }
            if workstream.pending.load(ordering: .relaxed) != 0 || stopRequest.load(ordering: .relaxed) != 0 {
                return true
            }
        }
        return false
    }

    /// The worker thread's body.
    ///
    /// Falling asleep: store `asleep`, then look for pending bits and ring reservations (both
    /// sequentially consistent). A producer reserves (a sequentially consistent compare-exchange),
    /// then loads `asleep`. One of the two sees the other, so a packet never waits for a worker
    /// that sleeps: either the worker sees the reservation and stays up, or the producer sees
    /// `asleep` and signals (under the signal's mutex, which the worker holds from its last check
    /// until it waits).
    ///
    /// Idle spinning adapts, as adaptive mutexes do: a spin that found work doubles the next
    /// one's length (up to `idleSpins`), a spin that ended in sleep halves it. A steady stream
    /// keeps the worker polling; traffic in bursts further apart than a spin (a capture ring's
    /// blocks) puts it to sleep at once instead of burning the CPU the reader needs.
    func workerLoop(_ workstream: Workstream) {
        let longest = configuration.idleSpins
        let shortest = min(64, longest)
        var spins = longest
        while true {
            let stop = stopRequest.load(ordering: .acquiring)
            if stop == 2 { return }
            if runPass(workstream) { continue }
            if stop == 1 {
                if hasWork(workstream) { continue }
                return
            }
            if configuration.pollMode {
                netisr_cpu_relax()
                continue
            }
            if spinUntilWork(workstream, spins: spins) {
                spins = min(max(spins * 2, shortest), longest)
                continue
            }
            spins = max(spins / 2, shortest)
            workstream.asleep.store(true, ordering: .sequentiallyConsistent)
            workstream.signal.wait {
                !hasWork(workstream) && stopRequest.load(ordering: .sequentiallyConsistent) == 0
            }
            workstream.asleep.store(false, ordering: .sequentiallyConsistent)
            WorkstreamQueue.ownerAdd(workstream.wakeups, 1)
        }
    }
}

/// Set by a worker thread once it is running.
final class WorkerStarted: Sendable {
    let flag = Atomic<Bool>(false)
}

/// Starts worker threads (pthreads, not Swift tasks: a worker blocks and may be pinned).
enum WorkerThread {
    private final class Context: Sendable {
        let core: EngineCore
        let workstream: Workstream
        let started: WorkerStarted
        init(core: EngineCore, workstream: Workstream, started: WorkerStarted) {
            self.core = core
            self.workstream = workstream
            self.started = started
        }
    }

    /// Starts `workstream`'s thread; `started` turns true once it runs with its producer context.
    static func spawn(
        core: EngineCore, workstream: Workstream, started: WorkerStarted
    ) -> Result<pthread_t, NetISRError> {
        let context = Unmanaged.passRetained(Context(core: core, workstream: workstream, started: started)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread, nil,
            { raw in
                let context = Unmanaged<Context>.fromOpaque(raw!).takeRetainedValue()
                let workstream = context.workstream
                _ = netisr_name_current_thread(workstream.threadName)
                if workstream.isBound {
                    let status = netisr_bind_current_thread(Int32(workstream.cpu))
                    if status != 0 {
                        context.core.warn(
                            "could not bind \(workstream.threadName) to CPU \(workstream.cpu) (errno \(status))")
                    }
                }
                // Make this thread's producer context now, then tell start() the worker is up.
                context.core.withContext { _ in }
                context.started.flag.store(true, ordering: .releasing)
                context.core.workerLoop(workstream)
                return nil
            }, context)
        guard status == 0 else {
            Unmanaged<Context>.fromOpaque(context).release()
            return .failure(NetISRError(.threadStartFailed, "pthread_create failed with errno \(status)"))
        }
        return .success(thread)
    }
}
