// The reliability test: producers on several threads while the control plane registers,
// unregisters, changes queue limits and the dispatch policy. Asserts conservation, per-flow
// order and that no handler call starts after its unregister returned. Scaled by
// NETISR_STRESS_PACKETS (packets per producer); run under ThreadSanitizer in CI.

import NetISR
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct StressTests {
    static var packetsPerProducer: Int {
        getenv("NETISR_STRESS_PACKETS").flatMap { Int(String(cString: $0)) } ?? 50_000
    }

    final class FlowOrder: Sendable {
        let last = Locked<[UInt32: UInt64]>([:])
        let violations = Atomic<Int>(0)
        func check(_ flow: UInt32, _ sequence: UInt64) {
            last.withLock { last in
                if let previous = last[flow], previous >= sequence { violations.wrappingAdd(1, ordering: .relaxed) }
                last[flow] = sequence
            }
        }
    }

    @Test func conservationOrderAndUnregisterUnderChurn() throws {
        var configuration = NetISRConfiguration(workstreamCount: 2)
        configuration.dispatchPolicy = .hybrid
        let engine = try NetISR(configuration: configuration)
        let releases = ReleaseCounter()
        let order = FlowOrder()
        try engine.register(
            ProtocolRegistration(name: "ip", number: 1, queueLimit: 64, ordering: .flow()) { burst in
                while let packet = burst.next() { order.check(packet.flowID!, packet.timestamp) }
            })
        let retiredGeneration = Atomic<Int>(-1)
        let lateCalls = Atomic<Int>(0)
        func churnRegistration(_ generation: Int) -> ProtocolRegistration {
            ProtocolRegistration(name: "churn", number: 2, queueLimit: 32, ordering: .source) { burst in
                if retiredGeneration.load(ordering: .sequentiallyConsistent) >= generation {
                    lateCalls.wrappingAdd(1, ordering: .relaxed)
                }
                while burst.next() != nil {}
            }
        }
        try engine.register(churnRegistration(0))
        try engine.start()

        let producers = 2
        let perProducer = Self.packetsPerProducer
        let offered = Atomic<Int>(0)
        let start = Atomic<Bool>(false)
        let done = Atomic<Int>(0)
        let threads = (0..<producers).map { producer in
            TestThread {
                while !start.load(ordering: .acquiring) {}
                var sequence: UInt64 = 0
                var batch = PacketBatch(capacity: 32)
                var sent = 0
                let whenFull: QueueFullAction = producer == 0 ? .wait : .drop
                while sent < perProducer {
                    sequence += 1
                    let flow = UInt32(producer * 1_000 + Int(sequence % 97))
                    if sequence % 3 == 0 {
                        engine.dispatch(2, packet(releases, source: UInt32(producer)), whenFull: whenFull)
                        sent += 1
                    } else if sequence % 5 == 0 {
                        engine.dispatch(1, packet(releases, flow: flow, sequence: sequence), whenFull: whenFull)
                        sent += 1
                    } else {
                        _ = batch.append(packet(releases, flow: flow, sequence: sequence))
                        sent += 1
                        if batch.isFull { engine.dispatch(1, batch: &batch, whenFull: whenFull) }
                    }
                }
                engine.dispatch(1, batch: &batch, whenFull: whenFull)
                offered.wrappingAdd(sent, ordering: .relaxed)
                done.wrappingAdd(1, ordering: .releasing)
            }
        }
        start.store(true, ordering: .releasing)
        var generation = 0
        var round = 0
        while done.load(ordering: .acquiring) < producers {
            round += 1
            try engine.unregister(2)
            retiredGeneration.store(generation, ordering: .sequentiallyConsistent)
            generation += 1
            try engine.register(churnRegistration(generation))
            try engine.setQueueLimit(of: 1, to: round % 2 == 0 ? 16 : 512)
            engine.dispatchPolicy = round % 3 == 0 ? .deferred : .hybrid
            _ = engine.snapshot()
            usleep(200)
        }
        for thread in threads { thread.join() }
        engine.stop(.drain)

        let snapshot = engine.snapshot()
        #expect(round > 0)
        #expect(order.violations.load(ordering: .relaxed) == 0)
        #expect(lateCalls.load(ordering: .relaxed) == 0)
        #expect(snapshot.totals.stillQueued == 0)
        expectConservation(snapshot, offered: offered.load(ordering: .relaxed), releases: releases)
    }
}
