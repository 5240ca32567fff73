// Registration (behaviour 1, S1), unregister (9, S4) and run-time limits (10, S13).

import NetISR
import NetISRTesting
import Testing

@Suite struct RegistrationTests {
    let recorder = Recorder()

    func registration(_ number: ProtocolNumber, _ name: String = "p", limit: Int = 0) -> ProtocolRegistration {
        ProtocolRegistration(
            name: name, number: number, queueLimit: limit, handler: recorder.handler(tag: number.rawValue))
    }

    @Test func registersBelowTheMaximumAndRejectsOutOfRange() throws {
        let embedded = try EmbeddedNetISR()
        try embedded.engine.register(registration(0))
        try embedded.engine.register(registration(31))
        for bad in [32, -1, 64] {
            #expect(throws: NetISRError.self) { try embedded.engine.register(registration(ProtocolNumber(bad))) }
            do { try embedded.engine.register(registration(ProtocolNumber(bad))) } catch {
                #expect(error.code == .protocolOutOfRange)
            }
        }
        #expect(embedded.engine.snapshot().protocols.map(\.number) == [0, 31])
    }

    @Test func sixtyFourSlotsWhenConfigured() throws {
        var configuration = NetISRConfiguration()
        configuration.maximumProtocols = 64
        let embedded = try EmbeddedNetISR(configuration: configuration)
        try embedded.engine.register(registration(63))
        embedded.engine.dispatchPolicy = .deferred
        #expect(embedded.engine.dispatch(63, packet(nil)) == .queued)
        embedded.runUntilIdle()
        #expect(recorder.all.map(\.tag) == [63])
        configuration.maximumProtocols = 65
        #expect(throws: NetISRError.self) { try EmbeddedNetISR(configuration: configuration) }
    }

    @Test func aTakenSlotIsAnError() throws {
        let embedded = try EmbeddedNetISR()
        try embedded.engine.register(registration(3, "ip"))
        do {
            try embedded.engine.register(registration(3, "ip6"))
            Issue.record("registered twice")
        } catch {
            #expect(error.code == .protocolTaken)
        }
    }

    @Test func invalidCombinationsAreTypedErrors() throws {
        let embedded = try EmbeddedNetISR()
        let handler = recorder.handler(tag: 0)
        let cases: [ProtocolRegistration] = [
            ProtocolRegistration(name: "", number: 1, handler: handler),
            ProtocolRegistration(name: "x", number: 1, queueLimit: -1, handler: handler),
            ProtocolRegistration(name: "x", number: 1, hasQueue: false, queueLimit: 10, handler: handler),
            ProtocolRegistration(name: "x", number: 1, hasQueue: false, ordering: .flow(), handler: handler),
            ProtocolRegistration(name: "x", number: 1, hasQueue: false, dispatchPolicy: .direct, handler: handler),
        ]
        for bad in cases {
            do {
                try embedded.engine.register(bad)
                Issue.record("accepted \(bad.name)")
            } catch {
                #expect(error.code == .invalidRegistration)
            }
        }
    }

    @Test func queueLimitZeroMeansDefaultAndAboveMaximumIsCappedWithAWarning() throws {
        let warnings = WarningLog()
        var configuration = NetISRConfiguration()
        configuration.warningHandler = warnings.handler
        let embedded = try EmbeddedNetISR(configuration: configuration)
        try embedded.engine.register(registration(1, limit: 0))
        try embedded.engine.register(registration(2, limit: 50_000))
        #expect(try embedded.engine.queueLimit(of: 1) == 256)
        #expect(try embedded.engine.queueLimit(of: 2) == 10_240)
        #expect(warnings.all.count == 1)
        #expect(warnings.all.first?.contains("capped") == true)
    }

    @Test func runTimeQueueLimitsAndDrops() throws {
        let embedded = try EmbeddedNetISR()
        let engine = embedded.engine
        engine.dispatchPolicy = .deferred
        try engine.register(registration(1, limit: 4))
        try engine.setQueueLimit(of: 1, to: 2)
        #expect(try engine.queueLimit(of: 1) == 2)
        do {
            try engine.setQueueLimit(of: 1, to: 10_241)
            Issue.record("accepted a limit above the maximum")
        } catch {
            #expect(error.code == .queueLimitAboveMaximum)
        }
        let releases = ReleaseCounter()
        let outcomes = (0..<5).map { _ in engine.queue(1, packet(releases)) }
        #expect(outcomes == [.queued, .queued, .dropped(.queueFull), .dropped(.queueFull), .dropped(.queueFull)])
        #expect(try engine.queueDrops(of: 1) == 3)
        #expect(releases.count == 3)
        #expect(engine.snapshot().work[0].watermark == 2)
        try engine.clearQueueDrops(of: 1)
        #expect(try engine.queueDrops(of: 1) == 0)
        try engine.setQueueLimit(of: 1, to: 3)
        #expect(engine.queue(1, packet(releases)) == .queued)
        #expect(engine.snapshot().work[0].length == 3)
        #expect(engine.snapshot().work[0].watermark == 3)
        embedded.runUntilIdle()
        #expect(recorder.all.count == 3)
        expectConservation(engine.snapshot(), offered: 6, releases: releases)
        do {
            _ = try engine.queueLimit(of: 9)
            Issue.record("limit of an unregistered protocol")
        } catch {
            #expect(error.code == .protocolNotRegistered)
        }
    }

    @Test func unregisterDrainsQueuedPacketsAndLaterDispatchIsANoHandlerDrop() throws {
        let embedded = try EmbeddedNetISR(workstreamCount: 2)
        let engine = embedded.engine
        engine.dispatchPolicy = .deferred
        try engine.register(registration(4))
        let releases = ReleaseCounter()
        for source in 0..<6 { engine.dispatch(4, packet(releases, source: UInt32(source))) }
        #expect(releases.count == 0)
        try engine.unregister(4)
        #expect(releases.count == 6)
        #expect(engine.snapshot().totals.drainedAtUnregister == 6)
        #expect(engine.dispatch(4, packet(releases)) == .dropped(.noHandler))
        #expect(engine.queue(4, packet(releases)) == .dropped(.noHandler))
        #expect(releases.count == 8)
        embedded.runUntilIdle()
        #expect(recorder.all.isEmpty)
        do {
            try engine.unregister(4)
            Issue.record("unregistered twice")
        } catch {
            #expect(error.code == .protocolNotRegistered)
        }
        // Re-registering works, with fresh queues.
        try engine.register(registration(4, "again"))
        #expect(engine.dispatch(4, packet(releases)) == .queued)
        embedded.runUntilIdle()
        #expect(recorder.all.count == 1)
        expectConservation(engine.snapshot(), offered: 9, releases: releases)
    }
}
