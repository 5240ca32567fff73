// The threaded engine: lifecycle (13, S12), lossless mode (5), sleeping and waking workers and
// poll mode (6, S9), the global lock (8, S2, S3), unregister during traffic (9), and
// conservation under concurrency (11).

import NetISR
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ThreadedEngineTests {
    func configuration(_ workstreams: Int, policy: DispatchPolicy = .deferred) -> NetISRConfiguration {
        var configuration = NetISRConfiguration(workstreamCount: workstreams)
        configuration.dispatchPolicy = policy
        return configuration
    }

    @Test func startStopAndRestart() throws {
        let engine = try NetISR(configuration: configuration(2))
        let recorder = Recorder()
        try engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        try engine.start()
        do {
            try engine.start()
            Issue.record("started twice")
        } catch {
            #expect(error.code == .alreadyStarted)
        }
        engine.dispatch(1, packet(nil, source: 1))
        engine.stop(.drain)
        #expect(recorder.all.count == 1)
        #expect(recorder.all.first?.onWorker == true)
        try engine.start()
        engine.dispatch(1, packet(nil))
        engine.stop(.drain)
        #expect(recorder.all.count == 2)
    }

    @Test func invalidConfigurationIsATypedError() {
        for change in [
            { (c: inout NetISRConfiguration) in c.workstreamCount = 0 },
            { (c: inout NetISRConfiguration) in c.defaultQueueLimit = 20_000 },
            { (c: inout NetISRConfiguration) in c.burstSize = 0 },
            { (c: inout NetISRConfiguration) in c.quantum = 1 },
        ] {
            var bad = NetISRConfiguration()
            change(&bad)
            do {
                _ = try NetISR(configuration: bad)
                Issue.record("accepted \(bad)")
            } catch {
                #expect(error.code == .invalidConfiguration)
            }
        }
    }

    @Test func stopDiscardReleasesAndCountsQueuedPackets() throws {
        let engine = try NetISR(configuration: configuration(1))
        let releases = ReleaseCounter()
        try engine.register(ProtocolRegistration(name: "ip", number: 1) { burst in while burst.next() != nil {} })
        // Not started: packets wait in the queue.
        for _ in 0..<10 { engine.dispatch(1, packet(releases)) }
        try engine.start()
        engine.stop(.discard)
        let totals = engine.snapshot().totals
        #expect(totals.handled + totals.discardedAtStop == 10)
        #expect(releases.count == 10)
        expectConservation(engine.snapshot(), offered: 10, releases: releases)
    }

    @Test func deinitReleasesEverythingStillQueued() throws {
        let releases = ReleaseCounter()
        do {
            let engine = try NetISR(configuration: configuration(2))
            try engine.register(ProtocolRegistration(name: "ip", number: 1) { _ in })
            for source in 0..<7 { engine.dispatch(1, packet(releases, source: UInt32(source))) }
            #expect(releases.count == 0)
        }
        #expect(releases.count == 7)
    }

    @Test func stopDrainOnANeverStartedEngineHandlesQueuedPacketsInTheCaller() throws {
        let engine = try NetISR(configuration: configuration(2))
        let releases = ReleaseCounter()
        let recorder = Recorder()
        try engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        for sequence in 0..<12 {
            engine.dispatch(1, packet(releases, source: UInt32(sequence % 3), sequence: UInt64(sequence)))
        }
        #expect(engine.snapshot().totals.stillQueued == 12)
        engine.stop(.drain)
        let handled = recorder.all
        #expect(handled.count == 12)
        #expect(handled.allSatisfy { !$0.onWorker })
        // Each source's packets in the order dispatched (source ordering holds when the caller drains).
        for source in 0..<3 {
            let sequences = handled.filter { $0.sequence % 3 == UInt64(source) }.map(\.sequence)
            #expect(sequences == sequences.sorted())
        }
        let totals = engine.snapshot().totals
        #expect(totals.handled == 12 && totals.stillQueued == 0 && totals.discardedAtStop == 0)
        expectConservation(engine.snapshot(), offered: 12, releases: releases)
    }

    @Test func stopDiscardOnANeverStartedEngineReleasesAndCountsQueuedPackets() throws {
        let engine = try NetISR(configuration: configuration(2))
        let releases = ReleaseCounter()
        try engine.register(ProtocolRegistration(name: "ip", number: 1) { _ in Issue.record("handler called") })
        for source in 0..<9 { engine.dispatch(1, packet(releases, source: UInt32(source))) }
        engine.stop(.discard)
        let totals = engine.snapshot().totals
        #expect(totals.discardedAtStop == 9 && totals.stillQueued == 0 && totals.handled == 0)
        #expect(releases.count == 9)
        expectConservation(engine.snapshot(), offered: 9, releases: releases)
    }

    @Test func packetsDispatchedAfterStopWaitForTheNextStop() throws {
        let engine = try NetISR(configuration: configuration(1))
        let releases = ReleaseCounter()
        let recorder = Recorder()
        try engine.register(ProtocolRegistration(name: "ip", number: 1, handler: recorder.handler(tag: 1)))
        try engine.start()
        engine.dispatch(1, packet(releases))
        engine.stop(.drain)
        for _ in 0..<5 { engine.dispatch(1, packet(releases)) }
        #expect(engine.snapshot().totals.stillQueued == 5)
        #expect(recorder.all.count == 1)
        engine.stop(.drain)
        #expect(recorder.all.count == 6)
        #expect(recorder.all.dropFirst().allSatisfy { !$0.onWorker })
        expectConservation(engine.snapshot(), offered: 6, releases: releases)
        #expect(releases.count == 6)
    }

    /// Producers keep dispatching while the engine stops, in either mode, and after: every packet
    /// ends handled or dropped by a reason (none left queued once the producers are done and the
    /// engine stops again), and each is released exactly once.
    @Test(arguments: [StopMode.drain, .discard])
    func stoppingUnderTrafficLosesNothing(_ mode: StopMode) throws {
        let engine = try NetISR(configuration: configuration(2))
        let releases = ReleaseCounter()
        let handled = Atomic<Int>(0)
        try engine.register(
            ProtocolRegistration(name: "ip", number: 1, queueLimit: 64) { burst in
                while burst.next() != nil { handled.wrappingAdd(1, ordering: .relaxed) }
            })
        try engine.start()
        let perProducer = 20_000
        let producers = (0..<2).map { producer in
            TestThread {
                for sequence in 0..<perProducer {
                    engine.dispatch(1, packet(releases, source: UInt32(producer), flow: UInt32(sequence % 97)))
                }
            }
        }
        #expect(eventually { engine.snapshot().totals.offered > perProducer / 2 })
        engine.stop(mode)
        for producer in producers { producer.join() }
        engine.stop(mode)
        let totals = engine.snapshot().totals
        #expect(totals.stillQueued == 0)
        #expect(totals.handled == handled.load(ordering: .relaxed))
        expectConservation(engine.snapshot(), offered: 2 * perProducer, releases: releases)
    }

    @Test func losslessModeWaitsForRoomInsteadOfDropping() throws {
        let engine = try NetISR(configuration: configuration(1))
        let releases = ReleaseCounter()
        let handled = Atomic<Int>(0)
        try engine.register(
            ProtocolRegistration(name: "slow", number: 1, queueLimit: 4) { burst in
                while burst.next() != nil {
                    usleep(50)
                    handled.wrappingAdd(1, ordering: .relaxed)
                }
            })
        try engine.start()
        for _ in 0..<200 { engine.dispatch(1, packet(releases), whenFull: .wait) }
        engine.stop(.drain)
        let snapshot = engine.snapshot()
        #expect(handled.load(ordering: .relaxed) == 200)
        #expect(snapshot.totals.queueDrops == 0)
        #expect(snapshot.totals.waits > 0)
        #expect(snapshot.work[0].watermark <= 4)
        expectConservation(snapshot, offered: 200, releases: releases)
        // Drop-tail stays the default.
        let dropping = try NetISR(configuration: configuration(1))
        try dropping.register(ProtocolRegistration(name: "slow", number: 1, queueLimit: 4) { _ in usleep(1000) })
        try dropping.start()
        for _ in 0..<50 { dropping.dispatch(1, packet(releases)) }
        dropping.stop(.drain)
        #expect(dropping.snapshot().totals.queueDrops > 0)
        expectConservation(dropping.snapshot(), offered: 50)
    }

    /// How a producer's wait for room can end without room being made.
    enum RoomWaitEnd: String, CaseIterable, Sendable { case stop, unregister }

    @Test(arguments: RoomWaitEnd.allCases)
    func aProducerSleepingForRoomLeavesWhenTheEngineStopsOrItsProtocolGoes(_ end: RoomWaitEnd) throws {
        let engine = try NetISR(configuration: configuration(1))
        let releases = ReleaseCounter()
        let handlerMayFinish = Atomic<Bool>(false)
        try engine.register(
            ProtocolRegistration(name: "held", number: 1, queueLimit: 2) { burst in
                while !handlerMayFinish.load(ordering: .acquiring) { usleep(100) }
                while burst.next() != nil {}
            })
        try engine.start()
        let producerReturned = Atomic<Bool>(false)
        let producer = TestThread {
            for _ in 0..<10 { engine.dispatch(1, packet(releases), whenFull: .wait) }
            producerReturned.store(true, ordering: .releasing)
        }
        // The worker holds its first burst, the queue fills, and the producer sleeps for room.
        #expect(eventually { engine.snapshot().totals.waits > 0 })
        // Stop and unregister both wait for the worker's handler call, but wake the producer at
        // once, though no room was made: its packets are counted, not kept waiting.
        let ender = TestThread {
            switch end {
            case .stop: engine.stop(.discard)
            case .unregister: _ = try? engine.unregister(1)
            }
        }
        #expect(eventually { producerReturned.load(ordering: .acquiring) })
        handlerMayFinish.store(true, ordering: .releasing)
        ender.join()
        producer.join()
        engine.stop(.drain)
        let snapshot = engine.snapshot()
        switch end {
        case .stop: #expect(snapshot.totals.discardedAtStop > 0)
        case .unregister: #expect(snapshot.totals.noHandlerDrops > 0)
        }
        expectConservation(snapshot, offered: 10, releases: releases)
    }

    @Test(arguments: [false, true])
    func idleWorkersWakeOnTheFirstPacket(pollMode: Bool) throws {
        var configuration = configuration(2)
        configuration.pollMode = pollMode
        configuration.bindThreads = true
        // No idle spinning: without poll mode every worker sleeps as soon as it is idle.
        configuration.idleSpins = 0
        let engine = try NetISR(configuration: configuration)
        let recorder = Recorder()
        try engine.register(
            ProtocolRegistration(name: "ip", number: 1, ordering: .flow(), handler: recorder.handler(tag: 1)))
        try engine.start()
        for round in 0..<50 {
            // Let the workers go idle, then send one packet: it must be handled without help.
            usleep(200)
            engine.dispatch(1, packet(nil, flow: UInt32(round), sequence: UInt64(round)))
            #expect(eventually { recorder.all.count == round + 1 })
        }
        let snapshot = engine.snapshot()
        engine.stop(.drain)
        #expect(snapshot.configuration.threadsBound)
        if !pollMode { #expect(snapshot.totals.wakeups > 0) }
    }

    @Test func handlersThatAreNotConcurrencySafeNeverOverlap() throws {
        let engine = try NetISR(configuration: configuration(2))
        let inside = Atomic<Int>(0)
        let overlaps = Atomic<Int>(0)
        let handled = Atomic<Int>(0)
        for number in 1...2 {
            try engine.register(
                ProtocolRegistration(
                    name: "g\(number)", number: ProtocolNumber(number), isConcurrencySafe: false, ordering: .flow()
                ) {
                    burst in
                    if inside.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue > 1 {
                        overlaps.wrappingAdd(1, ordering: .relaxed)
                    }
                    while burst.next() != nil { handled.wrappingAdd(1, ordering: .relaxed) }
                    usleep(10)
                    inside.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                })
        }
        try engine.start()
        for index in 0..<2_000 {
            engine.dispatch(ProtocolNumber(1 + index % 2), packet(nil, flow: UInt32(index)), whenFull: .wait)
        }
        engine.stop(.drain)
        #expect(handled.load(ordering: .relaxed) == 2_000)
        #expect(overlaps.load(ordering: .relaxed) == 0)
        #expect(engine.snapshot().totals.direct == 0)
    }

    @Test func serializationRequestsBeforeAndAfterStart() throws {
        let warnings = WarningLog()
        var configuration = configuration(2, policy: .direct)
        configuration.warningHandler = warnings.handler
        let engine = try NetISR(configuration: configuration)
        try engine.register(ProtocolRegistration(name: "ip", number: 1) { _ in })
        engine.requireSerialization(by: "legacy-filter")
        #expect(warnings.all.count == 1)
        #expect(engine.snapshot().configuration.serializeAllHandlers)
        try engine.register(ProtocolRegistration(name: "ip6", number: 2) { _ in })
        // In serialized mode nothing is directly dispatched and flags read as not concurrency-safe.
        #expect(engine.dispatch(1, packet(nil)) == .queued)
        #expect(engine.snapshot().protocols.first { $0.number == 2 }?.isConcurrencySafe == false)
        try engine.start()
        engine.requireSerialization(by: "late-1")
        engine.requireSerialization(by: "late-2")
        engine.stop()
        #expect(warnings.all.count == 3)
        #expect(warnings.all[1].contains("set serializeAllHandlers"))
        #expect(!warnings.all[2].contains("set serializeAllHandlers"))
        #expect(engine.snapshot().totals.lateSerializationRequests == 2)
    }

    @Test func serializeAllHandlersConfiguration() throws {
        var configuration = configuration(2, policy: .direct)
        configuration.serializeAllHandlers = true
        let engine = try NetISR(configuration: configuration)
        try engine.register(ProtocolRegistration(name: "ip", number: 1) { _ in })
        #expect(engine.dispatch(1, packet(nil)) == .queued)
        #expect(NetstatReport.text(engine.snapshot()).contains("ip         1    256 source  default   ---"))
    }

    @Test func unregisterWaitsForRunningHandlersAndNoCallFollowsIt() throws {
        let engine = try NetISR(configuration: configuration(2, policy: .hybrid))
        let releases = ReleaseCounter()
        let inHandler = Atomic<Int>(0)
        let callsAfterUnregister = Atomic<Int>(0)
        let unregistered = Atomic<Bool>(false)
        try engine.register(
            ProtocolRegistration(name: "ip", number: 1, ordering: .flow()) { burst in
                inHandler.wrappingAdd(1, ordering: .sequentiallyConsistent)
                if unregistered.load(ordering: .sequentiallyConsistent) {
                    callsAfterUnregister.wrappingAdd(1, ordering: .relaxed)
                }
                while burst.next() != nil { usleep(5) }
                inHandler.wrappingSubtract(1, ordering: .sequentiallyConsistent)
            })
        try engine.start()
        let offered = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let producer = TestThread {
            var flow: UInt32 = 0
            while !stop.load(ordering: .relaxed) {
                flow &+= 1
                engine.dispatch(1, packet(releases, flow: flow))
                offered.wrappingAdd(1, ordering: .relaxed)
            }
        }
        usleep(20_000)
        try engine.unregister(1)
        unregistered.store(true, ordering: .sequentiallyConsistent)
        #expect(inHandler.load(ordering: .sequentiallyConsistent) == 0)
        usleep(10_000)
        stop.store(true, ordering: .relaxed)
        producer.join()
        engine.stop()
        #expect(callsAfterUnregister.load(ordering: .relaxed) == 0)
        expectConservation(engine.snapshot(), offered: offered.load(ordering: .relaxed), releases: releases)
        #expect(engine.snapshot().totals.noHandlerDrops > 0)
    }
}
