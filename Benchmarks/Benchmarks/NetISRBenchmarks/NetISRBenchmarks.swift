// Allocation and timing benchmarks of the engine's packet path, run by ordo-one/benchmark.
// The CI gate is `mallocCountTotal`: a steady-state dispatch must allocate nothing per packet,
// so every benchmark here is checked against the thresholds in Thresholds/ (0 allocations).
// Engines are built before `startMeasurement()` and stopped after `stopMeasurement()`.
//
//   swift package benchmark                      # run
//   swift package benchmark thresholds check     # what CI runs

import Benchmark
import NetISR
import PacketWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Counts packets in one place the optimizer cannot remove.
final class PacketCounter: Sendable {
    let counted = Atomic<Int>(0)
    var handler: PacketHandler {
        { burst in
            let count = burst.remaining
            while let packet = burst.next() { blackHole(packet.flowID) }
            self.counted.wrappingAdd(count, ordering: .releasing)
        }
    }
}

func makeEngine(_ policy: DispatchPolicy, workstreams: Int, start: Bool = true) -> (NetISR, PacketCounter) {
    var configuration = NetISRConfiguration(workstreamCount: workstreams)
    configuration.dispatchPolicy = policy
    let engine = try! NetISR(configuration: configuration)
    let counter = PacketCounter()
    try! engine.register(
        ProtocolRegistration(name: "bench", number: 1, queueLimit: 1024, ordering: .flow(), handler: counter.handler))
    if start { try! engine.start() }
    return (engine, counter)
}

/// Dispatches `benchmark.scaledIterations` bursts of `burst` packets.
func dispatchBursts(_ benchmark: Benchmark, policy: DispatchPolicy, workstreams: Int, burst: Int, start: Bool = true) {
    let (engine, counter) = makeEngine(policy, workstreams: workstreams, start: start)
    var batch = PacketBatch(capacity: burst)
    var sent = 0
    // Warm-up: first-use work (each thread's context, the rings' pages, the regrouping scratch)
    // happens here, on every workstream, before measuring.
    for _ in 0..<64 {
        for flow in 0..<burst { _ = batch.append(Packet(flowID: UInt32(truncatingIfNeeded: sent + flow))) }
        engine.dispatch(1, batch: &batch, whenFull: start ? .wait : .drop)
        sent += burst
    }
    if start {
        while counter.counted.load(ordering: .acquiring) < sent { sched_yield() }
    }
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        for offset in 0..<burst { _ = batch.append(Packet(flowID: UInt32(truncatingIfNeeded: sent + offset))) }
        engine.dispatch(1, batch: &batch, whenFull: start ? .wait : .drop)
        sent += burst
    }
    if start {
        while counter.counted.load(ordering: .acquiring) < sent { sched_yield() }
    }
    benchmark.stopMeasurement()
    engine.stop(.discard)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 200,
        thresholds: [.mallocCountTotal: .strict]
    )

    Benchmark("Dispatch.direct.burst32") { benchmark in
        dispatchBursts(benchmark, policy: .direct, workstreams: 1, burst: 32)
    }
    Benchmark("Dispatch.direct.single") { benchmark in
        dispatchBursts(benchmark, policy: .direct, workstreams: 1, burst: 1)
    }
    Benchmark("Dispatch.hybrid.burst32") { benchmark in
        dispatchBursts(benchmark, policy: .hybrid, workstreams: 1, burst: 32)
    }
    Benchmark("Dispatch.deferred.burst32.1ws") { benchmark in
        dispatchBursts(benchmark, policy: .deferred, workstreams: 1, burst: 32)
    }
    Benchmark("Dispatch.deferred.burst32.2ws") { benchmark in
        dispatchBursts(benchmark, policy: .deferred, workstreams: 2, burst: 32)
    }
    Benchmark("Dispatch.deferred.single.1ws") { benchmark in
        dispatchBursts(benchmark, policy: .deferred, workstreams: 1, burst: 1)
    }
    Benchmark("Dispatch.drop.burst32") { benchmark in
        dispatchBursts(benchmark, policy: .deferred, workstreams: 1, burst: 32, start: false)
    }
    wireBenchmarks()
}

let wireBenchmarks: @Sendable () -> Void = {
    let hasher = ToeplitzHash()
    Benchmark("Wire.parseClassifyKeyHash") { benchmark in
        var frames: [[UInt8]] = []
        var synthesizer = TrafficSynthesizer(.init(packets: 1_000, flows: 100, seed: 3))
        synthesizer.generate { frame, _ in frames.append(Array(frame)) }
        benchmark.startMeasurement()
        for iteration in benchmark.scaledIterations {
            let frame = frames[iteration % frames.count]
            frame.withUnsafeBytes { bytes in
                let summary = PacketParser.parse(bytes, linkType: .ethernet)
                if let flow = summary.flow { blackHole(hasher.symmetricHash(flow)) }
            }
        }
        benchmark.stopMeasurement()
    }
}
