// The packet path: dispatch and queue (FreeBSD's `netisr_dispatch_src` / `netisr_queue_src`).
//
// One call = one ReaderGate read section on the caller's ProducerContext: load the
// registration, choose the policy, place each packet on a workstream, then per workstream either
// run the handler in the caller (direct, or hybrid on an idle workstream) or move the run of
// packets into that workstream's ring with one reservation and wake the worker if it sleeps.
// Packets of one call that land on one workstream stay in call order, so a caller's flow never
// reorders. No lock is taken and nothing is allocated: scratch space lives on the stack, engine
// objects are used as guaranteed references (no reference counting per packet), and counts go to
// the caller's own context. The ring reservation is the only read-modify-write on a line other
// threads write, and it comes before the packet writes.

import Synchronization

extension EngineCore {
    /// Marks, in a placement, that the packet runs in the caller (hybrid with no CPU preference).
    private static let runHereFlag = 1 << 30

    /// Runs longer than this are placed in chunks, so per-packet scratch (placements, the
    /// regrouping buffer) fits on the stack and in a context's scratch buffer.
    static let chunk = 128

    /// A lossless producer facing a full ring spins and yields this many times (Backoff.swift)
    /// before it sleeps until the worker makes room (PacketRing's `waitForRoom`).
    private static let spinsBeforeRoomWait = 72

    /// The longest a producer sleeps for room, in nanoseconds (1 ms), before it checks again that
    /// the engine still runs and the protocol is still registered. Stop and unregister wake it at
    /// once; the bound is a safety net.
    private static let roomWaitBound = 1_000_000

    /// What every run of one call shares. Its references are passed as guaranteed parameters
    /// (never stored), so using them costs no reference counting.
    private struct Delivery {
        let policy: DispatchPolicy
        let whenFull: QueueFullAction
    }

    /// The policy a protocol's packets follow now.
    @inline(__always)
    func effectivePolicy(_ registered: RegisteredProtocol) -> DispatchPolicy {
        if registered.needsGiant || serializeAll.load(ordering: .relaxed) { return .deferred }
        return registered.dispatchOverride ?? dispatchPolicy
    }

    /// The workstream a packet belongs to, possibly with `runHereFlag`.
    @inline(__always)
    private func placement(_ registered: RegisteredProtocol, _ packet: inout Packet, hybrid: Bool) -> Int {
        switch registered.orderingKind {
        case .source:
            return map.workstream(forSourceID: packet.sourceID)
        case .flow:
            if let flowID = packet.flowID { return map.workstream(forFlowID: flowID) }
            if let callback = registered.flowCallback, let flowID = callback(packet) {
                packet.flowID = flowID
                return map.workstream(forFlowID: flowID)
            }
            return map.workstream(forSourceID: packet.sourceID)
        case .cpu:
            switch registered.cpuCallback!(packet) {
            case .workstream(let index):
                let modulo = index % workstreams.count
                return modulo < 0 ? modulo + workstreams.count : modulo
            case .none:
                let bySource = map.workstream(forSourceID: packet.sourceID)
                return hybrid ? bySource | Self.runHereFlag : bySource
            }
        }
    }

    /// Dispatches one packet.
    func dispatch(
        _ number: ProtocolNumber, _ packet: consuming Packet, whenFull: QueueFullAction, alwaysQueue: Bool
    ) -> DispatchOutcome {
        var holder: Packet? = consume packet
        let outcome = withUnsafeTemporaryAllocation(of: Packet.self, capacity: 1) { buffer in
            buffer.baseAddress!.initialize(to: holder.take()!)
            return dispatchRun(number, buffer.baseAddress!, 1, whenFull: whenFull, alwaysQueue: alwaysQueue)
        }
        if outcome.handled == 1 { return .handled }
        if outcome.queued == 1 { return .queued }
        if outcome.droppedQueueFull == 1 { return .dropped(.queueFull) }
        if outcome.droppedStopped == 1 { return .dropped(.discardedAtStop) }
        return .dropped(.noHandler)
    }

    /// Dispatches `count` packets at `base`, moving every one of them out.
    func dispatchRun(
        _ number: ProtocolNumber, _ base: UnsafeMutablePointer<Packet>, _ count: Int,
        whenFull: QueueFullAction, alwaysQueue: Bool
    ) -> BatchOutcome {
        var outcome = BatchOutcome()
        guard count > 0 else { return outcome }
        withContext { context in
            let index = number.rawValue
            guard index >= 0, index < slotTable.count else {
                base.deinitialize(count: count)
                WorkstreamQueue.ownerAdd(context.outOfRangeDrops, count)
                outcome.droppedNoHandler = count
                return
            }
            gate.enter(context)
            defer { gate.exit(context) }
            slotTable.with(index) { slot in
                guard let current = slot.current.load(ordering: .sequentiallyConsistent),
                    current._withUnsafeGuaranteedRef({ $0.hasQueue })
                else {
                    base.deinitialize(count: count)
                    context.add(.noHandler, index, 0, count)
                    outcome.droppedNoHandler = count
                    return
                }
                current._withUnsafeGuaranteedRef { registered in
                    let policy = alwaysQueue ? .deferred : effectivePolicy(registered)
                    let delivery = Delivery(policy: policy, whenFull: whenFull)
                    place(registered, slot, context, delivery, base, count, &outcome)
                }
            }
        }
        return outcome
    }

    /// Places each packet and delivers the run (or its per-workstream groups).
    @inline(__always)
    private func place(
        _ registered: RegisteredProtocol, _ slot: ProtocolSlot, _ context: ProducerContext, _ delivery: Delivery,
        _ base: UnsafeMutablePointer<Packet>, _ count: Int, _ outcome: inout BatchOutcome
    ) {
        if workstreams.count == 1, registered.orderingKind != .cpu {
            deliver(registered, slot, context, delivery, base, count, to: 0, &outcome)
            return
        }
        var start = 0
        while start < count {
            let size = min(Self.chunk, count - start)
            placeChunk(registered, slot, context, delivery, base + start, size, &outcome)
            start += size
        }
    }

    @inline(__always)
    private func placeChunk(
        _ registered: RegisteredProtocol, _ slot: ProtocolSlot, _ context: ProducerContext, _ delivery: Delivery,
        _ base: UnsafeMutablePointer<Packet>, _ count: Int, _ outcome: inout BatchOutcome
    ) {
        let hybrid = delivery.policy == .hybrid
        withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { targets in
            var uniform = true
            let first = placement(registered, &base[0], hybrid: hybrid)
            targets[0] = first
            for offset in 1..<count {
                let target = placement(registered, &base[offset], hybrid: hybrid)
                targets[offset] = target
                uniform = uniform && target == first
            }
            if uniform {
                deliver(registered, slot, context, delivery, base, count, to: first, &outcome)
            } else {
                deliverGrouped(registered, slot, context, delivery, base, count, targets, &outcome)
            }
        }
    }

    /// Stable-partitions packets by placement (a counting sort on the stack), then delivers each group.
    private func deliverGrouped(
        _ registered: RegisteredProtocol, _ slot: ProtocolSlot, _ context: ProducerContext, _ delivery: Delivery,
        _ base: UnsafeMutablePointer<Packet>, _ count: Int,
        _ targets: UnsafeMutableBufferPointer<Int>, _ outcome: inout BatchOutcome
    ) {
        let width = workstreams.count
        let groups = 2 * width
        func group(_ target: Int) -> Int {
            target & Self.runHereFlag != 0 ? width + (target ^ Self.runHereFlag) : target
        }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: groups) { next in
            next.initialize(repeating: 0)
            for offset in 0..<count { next[group(targets[offset])] += 1 }
            var start = 0
            for index in 0..<groups {
                let size = next[index]
                next[index] = start
                start += size
            }
            context.withScratch { sorted in
                for offset in 0..<count {
                    let index = group(targets[offset])
                    (sorted + next[index]).initialize(to: (base + offset).move())
                    next[index] += 1
                }
                var begin = 0
                for index in 0..<groups where next[index] > begin {
                    let target = index < width ? index : (index - width) | Self.runHereFlag
                    deliver(
                        registered, slot, context, delivery, sorted + begin, next[index] - begin, to: target,
                        &outcome)
                    begin = next[index]
                }
            }
        }
    }

    /// Delivers a run of packets bound for one workstream.
    @inline(__always)
    private func deliver(
        _ registered: RegisteredProtocol, _ slot: ProtocolSlot, _ context: ProducerContext, _ delivery: Delivery,
        _ base: UnsafeMutablePointer<Packet>, _ count: Int, to target: Int, _ outcome: inout BatchOutcome
    ) {
        let runHere = target & Self.runHereFlag != 0
        let index = target & ~Self.runHereFlag
        switch delivery.policy {
        case .direct:
            context.add(.dispatched, registered.number, index, count)
            runInCaller(registered, base, count, on: index)
            outcome.handled += count
        case .hybrid:
            if runHere {
                context.add(.hybridDispatched, registered.number, index, count)
                runInCaller(registered, base, count, on: index)
                outcome.handled += count
                return
            }
            let ranHere = workstreamTable.with(index) { workstream in
                guard workstream.tryAcquireDispatching() else { return false }
                defer { workstream.releaseDispatching() }
                // Idle means nothing queued for any protocol here, as FreeBSD's "not scheduled".
                guard !hasReservations(on: index) else { return false }
                context.add(.hybridDispatched, registered.number, index, count)
                runInCaller(registered, base, count, on: index)
                return true
            }
            if ranHere {
                outcome.handled += count
            } else {
                enqueue(registered, slot, context, delivery, base, count, on: index, &outcome)
            }
        case .deferred:
            enqueue(registered, slot, context, delivery, base, count, on: index, &outcome)
        }
    }

    @inline(__always)
    private func runInCaller(
        _ registered: RegisteredProtocol, _ base: UnsafeMutablePointer<Packet>, _ count: Int, on workstream: Int
    ) {
        var burst = PacketBurst(base: base, count: count, workstreamID: workstream)
        registered.handler(&burst)
    }

    /// Moves a run into a workstream's ring, waiting for room if asked and possible.
    ///
    /// Order of work: reserve (the one read-modify-write, which also orders this producer against
    /// a worker going to sleep), read the worker's `asleep`, count, then write and publish the
    /// packets, and wake the worker only if it was asleep.
    @inline(__always)
    private func enqueue(
        _ registered: RegisteredProtocol, _ slot: ProtocolSlot, _ context: ProducerContext, _ delivery: Delivery,
        _ base: UnsafeMutablePointer<Packet>, _ count: Int, on index: Int, _ outcome: inout BatchOutcome
    ) {
        let number = registered.number
        var offset = 0
        var attempt = 0
        var stillRegistered = true
        registered.queues.with(index) { queue in
            _ = queue.withRing { ring in
                while true {
                    let reservation = ring.reserve(count - offset)
                    if reservation.count > 0 {
                        let sleeping = workstreamTable.with(index) { $0.asleep.load(ordering: .sequentiallyConsistent) }
                        context.add(.queued, number, index, reservation.count)
                        if reservation.length > queue.watermark.load(ordering: .relaxed) {
                            queue.noteLength(min(reservation.length, ring.count + reservation.count))
                        }
                        ring.write(at: reservation.start, from: base + offset, count: reservation.count)
                        ring.publish(at: reservation.start, count: reservation.count)
                        offset += reservation.count
                        attempt = 0
                        if sleeping { workstreamTable.with(index) { $0.signal.signal() } }
                    }
                    if offset == count || delivery.whenFull == .drop || isManual || !isRunning.load(ordering: .relaxed)
                    {
                        break
                    }
                    stillRegistered = slot.holds(registered)
                    if !stillRegistered { break }
                    if attempt == 0 { context.add(.waits, number, index, 1) }
                    attempt += 1
                    if attempt < Self.spinsBeforeRoomWait {
                        backOff(attempt)
                    } else {
                        ring.waitForRoom(atMost: Self.roomWaitBound) {
                            isRunning.load(ordering: .sequentiallyConsistent) && slot.holds(registered)
                        }
                    }
                }
            }
        }
        outcome.queued += offset
        let rest = count - offset
        guard rest > 0 else { return }
        (base + offset).deinitialize(count: rest)
        if !stillRegistered {
            context.add(.noHandler, number, 0, rest)
            outcome.droppedNoHandler += rest
        } else if delivery.whenFull == .wait && !isManual && !isRunning.load(ordering: .relaxed) && attempt > 0 {
            context.add(.stoppedWhileWaiting, number, index, rest)
            outcome.droppedStopped += rest
        } else {
            context.add(.queueDrops, number, index, rest)
            outcome.droppedQueueFull += rest
        }
    }

    /// Groups packets by the protocol `next` names (a stable counting sort in the caller's
    /// scratch) and dispatches each group as one run, in chunks of `chunk` packets.
    func dispatchByProtocol(
        _ base: UnsafeMutablePointer<Packet>, _ count: Int, whenFull: QueueFullAction,
        next: (borrowing Packet) -> ProtocolNumber
    ) -> BatchOutcome {
        var outcome = BatchOutcome()
        var start = 0
        while start < count {
            let size = min(Self.chunk, count - start)
            outcome.add(dispatchChunkByProtocol(base + start, size, whenFull: whenFull, next: next))
            start += size
        }
        return outcome
    }

    private func dispatchChunkByProtocol(
        _ base: UnsafeMutablePointer<Packet>, _ count: Int, whenFull: QueueFullAction,
        next: (borrowing Packet) -> ProtocolNumber
    ) -> BatchOutcome {
        var outcome = BatchOutcome()
        withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { numbers in
            var uniform = true
            for offset in 0..<count {
                let number = next(base[offset]).rawValue
                numbers[offset] = (0..<slots.count).contains(number) ? number : slots.count
                if numbers[offset] != numbers[0] { uniform = false }
            }
            if uniform {
                outcome.add(
                    dispatchRun(ProtocolNumber(numbers[0]), base, count, whenFull: whenFull, alwaysQueue: false))
                return
            }
            let buckets = slots.count + 1
            withUnsafeTemporaryAllocation(of: Int.self, capacity: buckets) { next in
                next.initialize(repeating: 0)
                for offset in 0..<count { next[numbers[offset]] += 1 }
                var start = 0
                for bucket in 0..<buckets {
                    let size = next[bucket]
                    next[bucket] = start
                    start += size
                }
                withContext { context in
                    context.withScratch { sorted in
                        for offset in 0..<count {
                            (sorted + next[numbers[offset]]).initialize(to: (base + offset).move())
                            next[numbers[offset]] += 1
                        }
                        var begin = 0
                        for bucket in 0..<buckets where next[bucket] > begin {
                            outcome.add(
                                dispatchRun(
                                    ProtocolNumber(bucket), sorted + begin, next[bucket] - begin, whenFull: whenFull,
                                    alwaysQueue: false))
                            begin = next[bucket]
                        }
                    }
                }
            }
        }
        return outcome
    }

    /// Makes a worker run a protocol's handler (with an empty burst for a protocol without a queue).
    func schedule(_ number: ProtocolNumber, workstream: Int) -> Bool {
        let index = number.rawValue
        guard index >= 0, index < slots.count else { return false }
        return withContext { context in
            gate.enter(context)
            defer { gate.exit(context) }
            guard slots[index].current.load(ordering: .sequentiallyConsistent) != nil else { return false }
            let count = workstreams.count
            workstreams[((workstream % count) + count) % count].schedule(1 << UInt64(index))
            return true
        }
    }
}
