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
            state.baselines[index] = producerCounts(index)
            slots[index].current.store(Unmanaged.passUnretained(registered), ordering: .sequentiallyConsistent)
            registeredMask.bitwiseOr(1 << UInt64(index), ordering: .sequentiallyConsistent)
        }
    }

    func unregister(_ number: ProtocolNumber) throws(NetISRError) {
        let index = try checkedIndex(number)
        try control.withLock { (state) throws(NetISRError) in
            guard let registered = state.registered[index] else {
                throw NetISRError(.protocolNotRegistered, "nothing is registered as protocol \(index)")
            }
            slots[index].current.store(nil, ordering: .sequentiallyConsistent)
            registeredMask.bitwiseAnd(~(1 << UInt64(index)), ordering: .sequentiallyConsistent)
            // Producers asleep for room in its queues wake, see it gone and leave the gate.
            registered.wakeRoomWaiters()
            gate.waitForReaders { allContexts }
            // No reader can reach `registered` now: this thread is its rings' only consumer.
            for queue in registered.queues.elements {
                let drained = queue.ring?.discardAll() ?? 0
                drainedAtUnregister.wrappingAdd(drained, ordering: .relaxed)
                state.retiredHandled += queue.handledByWorker.load(ordering: .relaxed)
                state.retiredSoftwareInterrupts += queue.softwareInterrupts.load(ordering: .relaxed)
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
        _ = try registered(number)
        let index = number.rawValue
        return control.withLock { state in
            (0..<workstreams.count).reduce(0) { total, workstream in
                total + sum(.queueDrops, index, workstream)
                    - state.baselines[index][baselineIndex(.queueDrops, workstream)]
            }
        }
    }

    func clearQueueDrops(_ number: ProtocolNumber) throws(NetISRError) {
        _ = try registered(number)
        let index = number.rawValue
        control.withLock { state in
            for workstream in 0..<workstreams.count {
                state.baselines[index][baselineIndex(.queueDrops, workstream)] = sum(.queueDrops, index, workstream)
            }
        }
    }

    /// Every producer-side counter of one protocol, summed over threads, workstream-major.
    func producerCounts(_ number: Int) -> [Int] {
        let contexts = allContexts
        var counts: [Int] = []
        counts.reserveCapacity(workstreams.count * ProducerContext.Kind.allCases.count)
        for workstream in 0..<workstreams.count {
            for kind in ProducerContext.Kind.allCases {
                counts.append(contexts.reduce(0) { $0 + $1.value(kind, number, workstream) })
            }
        }
        return counts
    }

    func baselineIndex(_ kind: ProducerContext.Kind, _ workstream: Int) -> Int {
        workstream * ProducerContext.Kind.allCases.count + kind.rawValue
    }
}
