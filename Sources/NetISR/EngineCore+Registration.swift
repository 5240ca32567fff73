// Registration and run-time limits (FreeBSD's `netisr_register`, `netisr_unregister`,
// `netisr_{get,set}qlimit`, `netisr_{get,clear}qdrops`). All under `control`.

import Synchronization

extension EngineCore {
    private func checkedIndex(_ number: ProtocolNumber) throws(NetISRError) -> Int {
        guard number.rawValue >= 0, number.rawValue < slots.count else {
            throw NetISRError(
                .protocolOutOfRange, "protocol \(number) is outside 0..<\(slots.count) (maximumProtocols)")
        }
        return number.rawValue
    }

    func register(_ registration: ProtocolRegistration) throws(NetISRError) {
        let index = try checkedIndex(registration.number)
        guard !registration.name.isEmpty else {
            throw NetISRError(.invalidRegistration, "protocol \(index) needs a name")
        }
        guard registration.queueLimit >= 0 else {
            throw NetISRError(
                .invalidRegistration, "\(registration.name): queue limit \(registration.queueLimit) is negative")
        }
        if !registration.hasQueue {
            guard registration.queueLimit == 0, registration.dispatchPolicy == nil else {
                throw NetISRError(
                    .invalidRegistration,
                    "\(registration.name): a protocol without a queue takes no queue limit or dispatch policy")
            }
            if case .source = registration.ordering {
            } else {
                throw NetISRError(
                    .invalidRegistration, "\(registration.name): a protocol without a queue has no ordering policy")
            }
        }
        var limit = registration.queueLimit == 0 ? configuration.defaultQueueLimit : registration.queueLimit
        if limit > configuration.maximumQueueLimit {
            warn(
                "\(registration.name): queue limit \(limit) capped to the maximum \(configuration.maximumQueueLimit)")
            limit = configuration.maximumQueueLimit
        }
        var effective = registration
        if serializeAll.load(ordering: .relaxed) { effective.isConcurrencySafe = false }
        let registered = RegisteredProtocol(
            registration: effective, needsGiant: !effective.isConcurrencySafe, queueLimit: limit,
            ringCapacity: ringCapacity, workstreams: workstreams.count)
        try control.withLock { (state) throws(NetISRError) in
            if let existing = state.registered[index] {
                throw NetISRError(
                    .protocolTaken, "protocol \(index) is already registered as \(existing.registration.name)")
            }
            state.registered[index] = registered
            slots[index].current.store(Unmanaged.passUnretained(registered), ordering: .sequentiallyConsistent)
        }
    }

    func unregister(_ number: ProtocolNumber) throws(NetISRError) {
        let index = try checkedIndex(number)
        try control.withLock { (state) throws(NetISRError) in
            guard let registered = state.registered[index] else {
                throw NetISRError(.protocolNotRegistered, "nothing is registered as protocol \(index)")
            }
            slots[index].current.store(nil, ordering: .sequentiallyConsistent)
            gate.waitForReaders()
            // No reader can reach `registered` now: this thread is its rings' only consumer.
            for queue in registered.queues.elements {
                let drained = queue.ring?.discardAll() ?? 0
                drainedAtUnregister.wrappingAdd(drained, ordering: .relaxed)
                state.retired.add(queue)
            }
            state.registered[index] = nil
        }
    }

    private func registered(_ number: ProtocolNumber) throws(NetISRError) -> RegisteredProtocol {
        let index = try checkedIndex(number)
        let found = control.withLock { state in state.registered[index] }
        guard let found else {
            throw NetISRError(.protocolNotRegistered, "nothing is registered as protocol \(index)")
        }
        return found
    }

    func queueLimit(_ number: ProtocolNumber) throws(NetISRError) -> Int {
        try registered(number).queueLimit.load(ordering: .relaxed)
    }

    func setQueueLimit(_ number: ProtocolNumber, _ limit: Int) throws(NetISRError) {
        let registered = try registered(number)
        guard registered.hasQueue else {
            throw NetISRError(.invalidRegistration, "\(registered.registration.name) has no queue")
        }
        guard limit >= 1 else { throw NetISRError(.invalidConfiguration, "a queue limit must be at least 1") }
        guard limit <= configuration.maximumQueueLimit else {
            throw NetISRError(
                .queueLimitAboveMaximum, "queue limit \(limit) is above the maximum \(configuration.maximumQueueLimit)")
        }
        registered.queueLimit.store(limit, ordering: .relaxed)
        for queue in registered.queues.elements { queue.ring?.limit = limit }
    }

    func queueDrops(_ number: ProtocolNumber) throws(NetISRError) -> Int {
        try registered(number).queues.elements.reduce(0) { $0 + $1.queueDrops.load(ordering: .relaxed) }
    }

    func clearQueueDrops(_ number: ProtocolNumber) throws(NetISRError) {
        for queue in try registered(number).queues.elements {
            queue.queueDropsCleared.wrappingAdd(queue.queueDrops.exchange(0, ordering: .relaxed), ordering: .relaxed)
        }
    }
}

extension RetiredCounters {
    /// Keeps an unregistered queue's counts in the engine's totals.
    mutating func add(_ queue: WorkstreamQueue) {
        dispatched += queue.dispatched.load(ordering: .relaxed)
        hybridDispatched += queue.hybridDispatched.load(ordering: .relaxed)
        queued += queue.queued.load(ordering: .relaxed)
        handled += queue.handledByWorker.load(ordering: .relaxed)
        queueDrops += queue.queueDrops.load(ordering: .relaxed) + queue.queueDropsCleared.load(ordering: .relaxed)
        discardedAtStop += queue.stoppedWhileWaiting.load(ordering: .relaxed)
        softwareInterrupts += queue.softwareInterrupts.load(ordering: .relaxed)
        waits += queue.waits.load(ordering: .relaxed)
    }
}
