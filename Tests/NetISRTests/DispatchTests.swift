// Dispatch policies (behaviour 3, S5, S10), queue (4, S6), software interrupts (2, S8),
// pending-bit order (6, S7) and placement (7) — on the deterministic engine.

import NetISR
import NetISRTesting
import Testing

@Suite struct DispatchTests {
    let recorder = Recorder()

    func engine(workstreams: Int = 1, policy: DispatchPolicy) throws -> EmbeddedNetISR {
        let embedded = try EmbeddedNetISR(workstreamCount: workstreams)
        embedded.engine.dispatchPolicy = policy
        return embedded
    }

    /// The rings move descriptors, never bytes: a packet stays 48 bytes (six words), owner included.
    @Test func aPacketIsASixWordDescriptor() {
        #expect(MemoryLayout<Packet>.size == 48)
        let counter = ReleaseCounter()
        do { _ = packet(counter) }
        #expect(counter.count == 1)
    }

    /// What a producer knows of a packet (its source, flow id, time and packet type) reaches the
    /// handler unchanged through a queue.
    @Test func aPacketsMetadataCrossesTheQueueUnchanged() throws {
        let embedded = try engine(policy: .deferred)
        let seen = Locked<[[UInt64]]>([])
        try embedded.engine.register(
            ProtocolRegistration(name: "ip", number: 1) { burst in
                while let packet = burst.next() {
                    let row = [
                        UInt64(packet.sourceID), packet.flowID.map(UInt64.init) ?? 99, packet.timestamp,
                        UInt64(packet.packetType),
                    ]
                    seen.withLock { $0.append(row) }
                }
            })
        _ = embedded.engine.dispatch(1, Packet(sourceID: 3, flowID: 7, timestamp: 11, packetType: 2))
        _ = embedded.engine.dispatch(1, Packet(sourceID: 4, timestamp: 12))
        _ = embedded.engine.dispatch(1, Packet(sourceID: 5, flowID: 0, packetType: 255))
        #expect(embedded.runUntilIdle() == 1)
        #expect(seen.withLock { $0 } == [[3, 7, 11, 2], [4, 99, 12, 0], [5, 0, 0, 255]])
    }

    @Test func directRunsInTheCaller() throws {
        let embedded = try engine(policy: .direct)
        try embedded.engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        #expect(embedded.engine.dispatch(1, packet(nil, sequence: 7)) == .handled)
        #expect(recorder.all.map(\.sequence) == [7])
        #expect(recorder.all.first?.onWorker == false)
        let row = embedded.engine.snapshot().work[0]
        #expect((row.dispatched, row.queued, row.handled) == (1, 0, 1))
        #expect(embedded.runUntilIdle() == 0)
    }

    @Test func deferredAlwaysQueues() throws {
        let embedded = try engine(policy: .deferred)
        try embedded.engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        #expect(embedded.engine.dispatch(1, packet(nil)) == .queued)
        #expect(recorder.all.isEmpty)
        #expect(embedded.runUntilIdle() == 1)
        #expect(recorder.all.count == 1)
        let row = embedded.engine.snapshot().work[0]
        #expect((row.dispatched, row.queued, row.handled, row.length) == (0, 1, 1, 0))
    }

    @Test func aProtocolOverridesTheEngineAndTheEngineDefaultChangesAtRunTime() throws {
        let embedded = try engine(policy: .direct)
        try embedded.engine.register(
            ProtocolRegistration(name: "slow", number: 2, dispatchPolicy: .deferred, handler: recorder.handler(tag: 2)))
        try embedded.engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        #expect(embedded.engine.dispatch(2, packet(nil)) == .queued)
        #expect(embedded.engine.dispatch(1, packet(nil)) == .handled)
        embedded.engine.dispatchPolicy = .deferred
        #expect(embedded.engine.dispatch(1, packet(nil)) == .queued)
        #expect(embedded.engine.snapshot().configuration.dispatchPolicy == .deferred)
    }

    /// A handler can look at the packets it has not taken yet (to prefetch their bytes): `peek`
    /// reads the next, `peek(ahead:)` one further on, and neither takes or releases anything.
    @Test func aHandlerPeeksAheadWithoutTakingPackets() throws {
        let embedded = try engine(policy: .deferred)
        let seen = Locked<[[UInt64?]]>([])
        try embedded.engine.register(
            ProtocolRegistration(name: "ip", number: 1) { burst in
                var rows: [[UInt64?]] = []
                while burst.remaining > 0 {
                    let row = [
                        burst.peek { $0.timestamp }, burst.peek(ahead: 0) { $0.timestamp },
                        burst.peek(ahead: 2) { $0.timestamp }, burst.peek(ahead: -1) { $0.timestamp },
                        burst.next()?.timestamp,
                    ]
                    rows.append(row)
                }
                rows.append([burst.peek { $0.timestamp }, burst.peek(ahead: 1) { $0.timestamp }])
                seen.withLock { $0.append(contentsOf: rows) }
            })
        let releases = ReleaseCounter()
        for sequence in 1...4 { _ = embedded.engine.dispatch(1, packet(releases, sequence: UInt64(sequence))) }
        #expect(embedded.runUntilIdle() == 1)  // one pass, one burst of four
        #expect(
            seen.withLock { $0 } == [
                [1, 1, 3, nil, 1], [2, 2, 4, nil, 2], [3, 3, nil, nil, 3], [4, 4, nil, nil, 4], [nil, nil],
            ])
        #expect(releases.count == 4)
    }

    @Test func hybridRunsDirectlyOnlyWhenTheWorkstreamIsIdle() throws {
        let embedded = try engine(policy: .hybrid)
        try embedded.engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        try embedded.engine.register(ProtocolRegistration(name: "arp", number: 2, handler: recorder.handler(tag: 2)))
        #expect(embedded.engine.dispatch(1, packet(nil, sequence: 1)) == .handled)
        // Something is queued (scheduled): hybrid must not overtake it, even for another protocol.
        #expect(embedded.engine.queue(1, packet(nil, sequence: 2)) == .queued)
        #expect(embedded.engine.dispatch(1, packet(nil, sequence: 3)) == .queued)
        #expect(embedded.engine.dispatch(2, packet(nil, sequence: 4)) == .queued)
        embedded.runUntilIdle()
        #expect(recorder.all.map(\.sequence) == [1, 2, 3, 4])
        #expect(embedded.engine.dispatch(1, packet(nil, sequence: 5)) == .handled)
        let row = embedded.engine.snapshot().work.first { $0.number == 1 }!
        #expect((row.hybridDispatched, row.queued, row.handled) == (2, 2, 4))
    }

    @Test func aHandlerThatIsNotConcurrencySafeIsNeverDirectlyDispatched() throws {
        for policy in DispatchPolicy.allCases {
            let embedded = try engine(policy: policy)
            try embedded.engine.register(
                ProtocolRegistration(
                    name: "giant", number: 1, isConcurrencySafe: false, handler: recorder.handler(tag: 1)))
            #expect(embedded.engine.dispatch(1, packet(nil)) == .queued)
            #expect(embedded.engine.snapshot().protocols[0].isConcurrencySafe == false)
        }
    }

    @Test func queueOutcomesAreQueuedNoHandlerOrQueueFull() throws {
        let embedded = try engine(policy: .direct)
        let releases = ReleaseCounter()
        try embedded.engine.register(
            ProtocolRegistration(name: "ip", number: 1, queueLimit: 1, handler: recorder.handler(tag: 1)))
        #expect(embedded.engine.queue(1, packet(releases)) == .queued)
        #expect(embedded.engine.queue(1, packet(releases)) == .dropped(.queueFull))
        #expect(embedded.engine.queue(7, packet(releases)) == .dropped(.noHandler))
        #expect(embedded.engine.queue(99, packet(releases)) == .dropped(.noHandler))
        #expect(releases.count == 3)
        let totals = embedded.engine.snapshot().totals
        #expect((totals.queued, totals.queueDrops, totals.noHandlerDrops) == (1, 1, 2))
        embedded.runUntilIdle()
        expectConservation(embedded.engine.snapshot(), offered: 4, releases: releases)
    }

    @Test func aProtocolWithoutAQueueIsASoftwareInterrupt() throws {
        let embedded = try engine(policy: .deferred)
        try embedded.engine.register(
            ProtocolRegistration(name: "swi", number: 3, hasQueue: false, handler: recorder.handler(tag: 3)))
        #expect(embedded.engine.schedule(3))
        #expect(embedded.engine.schedule(3))  // coalesced: one pending bit
        #expect(!embedded.engine.schedule(4))
        #expect(recorder.emptyCalls.load(ordering: .relaxed) == 0)
        embedded.runUntilIdle()
        #expect(recorder.emptyCalls.load(ordering: .relaxed) == 1)
        #expect(recorder.all.isEmpty)
        #expect(embedded.engine.snapshot().totals.softwareInterrupts == 1)
        // A packet for it has nowhere to go: dropped and counted, as the seed does.
        let releases = ReleaseCounter()
        #expect(embedded.engine.dispatch(3, packet(releases)) == .dropped(.noHandler))
        #expect(releases.count == 1)
    }

    @Test func pendingProtocolsAreServedLowestNumberFirst() throws {
        let embedded = try engine(policy: .deferred)
        for number in [9, 2, 5] {
            try embedded.engine.register(
                ProtocolRegistration(
                    name: "p\(number)", number: ProtocolNumber(number), handler: recorder.handler(tag: number)))
        }
        for number in [9, 5, 2, 9] { embedded.engine.dispatch(ProtocolNumber(number), packet(nil)) }
        #expect(embedded.runPass())
        #expect(recorder.all.map(\.tag) == [2, 5, 9, 9])
        #expect(!embedded.runPass())
    }

    @Test func aQuantumLeavesTheRestForTheNextPass() throws {
        var configuration = NetISRConfiguration()
        configuration.burstSize = 4
        configuration.quantum = 8
        let embedded = try EmbeddedNetISR(configuration: configuration)
        embedded.engine.dispatchPolicy = .deferred
        try embedded.engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        for sequence in 0..<20 { embedded.engine.dispatch(1, packet(nil, sequence: UInt64(sequence))) }
        #expect(embedded.runPass())
        #expect(recorder.all.count == 8)
        #expect(embedded.runUntilIdle() == 2)
        #expect(recorder.all.map(\.sequence) == (0..<20).map(UInt64.init))
    }

    @Test func placementBySourceFlowAndCallbacks() throws {
        let embedded = try engine(workstreams: 3, policy: .deferred)
        try embedded.engine.register(ProtocolRegistration(name: "src", number: 1, handler: recorder.handler(tag: 1)))
        try embedded.engine.register(
            ProtocolRegistration(name: "flow", number: 2, ordering: .flow(), handler: recorder.handler(tag: 2)))
        try embedded.engine.register(
            ProtocolRegistration(
                name: "flowcb", number: 3,
                ordering: .flow({ packet in packet.sourceID == 0 ? nil : packet.sourceID * 10 }),
                handler: recorder.handler(tag: 3)))
        try embedded.engine.register(
            ProtocolRegistration(
                name: "cpu", number: 4, ordering: .cpu({ packet in .workstream(Int(packet.timestamp)) }),
                handler: recorder.handler(tag: 4)))
        embedded.engine.dispatch(1, packet(nil, source: 7, flow: 2))  // source 7 → ws 1
        embedded.engine.dispatch(2, packet(nil, source: 7, flow: 2))  // flow 2 → ws 2
        embedded.engine.dispatch(2, packet(nil, source: 4))  // no flow, no callback → source 4 → ws 1
        embedded.engine.dispatch(3, packet(nil, source: 2))  // callback flow 20 → ws 2
        embedded.engine.dispatch(3, packet(nil, source: 0))  // callback has none → source 0 → ws 0
        embedded.engine.dispatch(4, packet(nil, sequence: 5))  // callback → ws 5 mod 3 = 2
        embedded.runUntilIdle()
        let seen = recorder.all.map { [$0.tag, $0.workstream] }.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }
        #expect(seen == [[1, 1], [2, 1], [2, 2], [3, 0], [3, 2], [4, 2]])
        // The flow callback's id is kept on the packet.
        #expect(recorder.all.filter { $0.tag == 3 }.compactMap(\.flow) == [20])
        let flags = embedded.engine.snapshot().protocols.map { "\($0.hasCPUCallback)\($0.hasFlowCallback)" }
        #expect(flags == ["falsefalse", "falsefalse", "falsetrue", "truefalse"])
    }

    /// The public map is where the engine places packets: each packet lands on the workstream the
    /// map names for its flow id (or its source, without one).
    @Test func theWorkstreamMapNamesWhereFlowAndSourceOrderingPlacePackets() throws {
        let embedded = try engine(workstreams: 3, policy: .deferred)
        try embedded.engine.register(
            ProtocolRegistration(name: "flow", number: 1, ordering: .flow(), handler: recorder.handler(tag: 1)))
        try embedded.engine.register(ProtocolRegistration(name: "src", number: 2, handler: recorder.handler(tag: 2)))
        let map = embedded.engine.workstreamMap
        #expect(map.workstreamCount == 3)
        let ids: [UInt32] = [0, 1, 2, 3, 5, 0x7FFF_FFFF, 0x8000_0000, 0xDEAD_BEEF, .max - 1, .max]
        var expected: [[Int]] = []
        for (index, id) in ids.enumerated() {
            embedded.engine.dispatch(1, packet(nil, flow: id, sequence: UInt64(index)))
            embedded.engine.dispatch(2, packet(nil, source: id, sequence: UInt64(index)))
            embedded.engine.dispatch(1, packet(nil, source: id, sequence: UInt64(100 + index)))  // no flow id
            expected += [
                [1, index, map.workstream(forFlowID: id)], [2, index, map.workstream(forSourceID: id)],
                [1, 100 + index, map.workstream(forSourceID: id)],
            ]
        }
        embedded.runUntilIdle()
        let seen = recorder.all.map { [$0.tag, Int($0.sequence), $0.workstream] }
        #expect(
            seen.sorted { $0.lexicographicallyPrecedes($1) } == expected.sorted { $0.lexicographicallyPrecedes($1) })
    }

    /// The map computes `id mod N` without dividing: exact at the edges and on a sweep of ids,
    /// for workstream counts up to 64 and some large ones.
    @Test func theWorkstreamMapIsTheRemainder() {
        var ids: [UInt32] = [0, 1, 2, .max, .max - 1, 1 << 31, (1 << 31) - 1]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            ids.append(UInt32(truncatingIfNeeded: state >> 32))
        }
        for count in Array(1...64) + [100, 255, 1_000, 65_535, 1 << 20, Int(UInt32.max)] {
            let map = WorkstreamMap(workstreamCount: count)
            for id in ids + [UInt32(truncatingIfNeeded: count - 1), UInt32(truncatingIfNeeded: count)] {
                #expect(map.workstream(forFlowID: id) == Int(id) % count, "id \(id), \(count) workstreams")
                #expect(map.workstream(forSourceID: id) == Int(id) % count)
            }
        }
    }

    @Test func noCPUPreferenceRunsHereUnderHybridAndFallsBackToSourceOtherwise() throws {
        let embedded = try engine(workstreams: 2, policy: .hybrid)
        try embedded.engine.register(
            ProtocolRegistration(
                name: "cpu", number: 1, ordering: .cpu({ _ in .none }), handler: recorder.handler(tag: 1)))
        embedded.engine.queue(1, packet(nil, source: 1))  // ws 1 now has work pending
        #expect(embedded.engine.dispatch(1, packet(nil, source: 1)) == .handled)  // still runs here
        embedded.engine.dispatchPolicy = .deferred
        #expect(embedded.engine.dispatch(1, packet(nil, source: 1)) == .queued)
        embedded.runUntilIdle()
        #expect(recorder.all.map(\.workstream) == [1, 1, 1])
    }

    @Test func aBatchIsGroupedPerWorkstreamInOrder() throws {
        let embedded = try engine(workstreams: 2, policy: .deferred)
        let releases = ReleaseCounter()
        try embedded.engine.register(
            ProtocolRegistration(
                name: "ip", number: 1, queueLimit: 3, ordering: .flow(), handler: recorder.handler(tag: 1)))
        var batch = PacketBatch(capacity: 8)
        for sequence in 0..<8 {
            if batch.append(packet(releases, flow: UInt32(sequence % 2), sequence: UInt64(sequence))) != nil {
                Issue.record("batch full too early")
            }
        }
        var handedBack = false
        if let rejected = batch.append(packet(releases)) {  // full: handed back, released here
            handedBack = true
            rejected.release()
        }
        #expect(handedBack)
        let outcome = embedded.engine.dispatch(1, batch: &batch)
        let emptied = batch.isEmpty
        #expect(emptied)
        #expect(outcome.queued == 6 && outcome.droppedQueueFull == 2 && outcome.total == 8)
        embedded.runUntilIdle()
        #expect(recorder.all.filter { $0.workstream == 0 }.map(\.sequence) == [0, 2, 4])
        #expect(recorder.all.filter { $0.workstream == 1 }.map(\.sequence) == [1, 3, 5])
        expectConservation(embedded.engine.snapshot(), offered: 8)
        #expect(releases.count == 9)
    }

    @Test func packetsTakenFromABurstAreTheHandlersToForward() throws {
        let embedded = try engine(policy: .deferred)
        let engine = embedded.engine
        let releases = ReleaseCounter()
        // "ether" hands every packet on to "ip", as FreeBSD's ether_input does.
        try engine.register(
            ProtocolRegistration(name: "ether", number: 5) { burst in
                while let packet = burst.next() { engine.dispatch(1, packet) }
            })
        try engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        for sequence in 0..<3 { engine.dispatch(5, packet(releases, sequence: UInt64(sequence))) }
        embedded.runUntilIdle()
        #expect(recorder.all.map(\.sequence) == [0, 1, 2])
        #expect(releases.count == 3)
        #expect(engine.snapshot().totals.offered == 6)
    }
}

@Suite struct ForwardingTests {
    @Test func aBurstIsForwardedGroupedByProtocolInOrder() throws {
        let embedded = try EmbeddedNetISR(workstreamCount: 2)
        let engine = embedded.engine
        engine.dispatchPolicy = .deferred
        let recorder = Recorder()
        let releases = ReleaseCounter()
        try engine.register(
            ProtocolRegistration(name: "ether", number: 9) { burst in
                engine.dispatch(&burst) { packet in ProtocolNumber(Int(packet.sourceID)) }
            })
        for number in [1, 10] {
            try engine.register(
                ProtocolRegistration(
                    name: "p\(number)", number: ProtocolNumber(number), ordering: .flow(),
                    handler: recorder.handler(tag: number)))
        }
        var batch = PacketBatch(capacity: 12)
        for sequence in 0..<12 {
            let next: UInt32 = sequence % 3 == 0 ? 10 : (sequence % 3 == 1 ? 1 : 77)  // 77: out of range
            _ = batch.append(packet(releases, source: next, flow: UInt32(sequence % 2), sequence: UInt64(sequence)))
        }
        engine.dispatch(9, batch: &batch)
        embedded.runUntilIdle()
        for tag in [1, 10] {
            for workstream in 0..<2 {
                let sequences = recorder.all.filter { $0.tag == tag && $0.workstream == workstream }.map(\.sequence)
                #expect(sequences == sequences.sorted())
            }
        }
        #expect(recorder.all.filter { $0.tag == 10 }.count == 4)
        #expect(recorder.all.filter { $0.tag == 1 }.count == 4)
        let totals = engine.snapshot().totals
        #expect(totals.noHandlerDrops == 4)
        #expect(releases.count == 12)
        expectConservation(engine.snapshot(), offered: 24)
    }
}

@Suite struct LargeBatchTests {
    @Test(arguments: [DispatchPolicy.deferred, .direct, .hybrid])
    func batchesLargerThanAChunkKeepPerWorkstreamOrder(policy: DispatchPolicy) throws {
        let embedded = try EmbeddedNetISR(workstreamCount: 3)
        let engine = embedded.engine
        engine.dispatchPolicy = policy
        let recorder = Recorder()
        let releases = ReleaseCounter()
        try engine.register(
            ProtocolRegistration(
                name: "ip", number: 1, queueLimit: 1_000, ordering: .flow(), handler: recorder.handler(tag: 1)))
        var batch = PacketBatch(capacity: 700)
        for sequence in 0..<700 {
            _ = batch.append(packet(releases, flow: UInt32(sequence * 7 % 11), sequence: UInt64(sequence)))
        }
        let outcome = engine.dispatch(1, batch: &batch)
        #expect(outcome.total == 700)
        embedded.runUntilIdle()
        #expect(recorder.all.count == 700)
        for flow in 0..<11 {
            let sequences = recorder.all.filter { $0.flow == UInt32(flow) }.map(\.sequence)
            #expect(sequences == sequences.sorted())
        }
        #expect(releases.count == 700)
        expectConservation(engine.snapshot(), offered: 700)
    }
}
