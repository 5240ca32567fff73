// The measured workloads. Each returns nanoseconds per item (per packet, per call) for one run.
// Producers and consumers are pinned to different CPUs where a hand-off crosses threads.

import CPeers
import DequeModule
import Dispatch
import NIOCore
import NIOPosix
import NetISR
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

enum Workloads {
    static let producerCPU: Int32 = 1
    static let consumerCPU: Int32 = 0

    // MARK: C peers

    static func cRing(items: Int, burst: Int) -> Double {
        peer_spsc_ring_run(items, burst, 1024, producerCPU, consumerCPU)
    }

    static func cCall(items: Int) -> Double {
        peer_function_pointer_run(items)
    }

    // MARK: The engine

    /// A handler that sums what it sees, so the work cannot be optimized away. Each workstream
    /// counts on its own cache line with plain (release) stores, no read-modify-write: one
    /// workstream's handler calls never overlap (its worker, or the one caller in the direct and
    /// hybrid workloads), so a call per packet costs what the engine costs, not two locked adds.
    final class Sink: @unchecked Sendable {  // unchecked: each line has one writer at a time
        private static let stride = 16
        private let lines: UnsafeMutablePointer<Atomic<Int>>
        private let workstreams: Int

        init(workstreams: Int) {
            self.workstreams = workstreams
            lines = .allocate(capacity: workstreams * Self.stride)
            for index in 0..<workstreams * Self.stride { (lines + index).initialize(to: Atomic(0)) }
        }

        deinit {
            lines.deinitialize(count: workstreams * Self.stride)
            lines.deallocate()
        }

        /// Packets handled so far (each line's count is published with release).
        var packets: Int {
            (0..<workstreams).reduce(0) { $0 + lines[$1 * Self.stride].load(ordering: .acquiring) }
        }

        var handler: PacketHandler {
            { burst in
                let line = self.lines + burst.workstreamID * Self.stride
                var sum = 0
                let count = burst.remaining
                while let packet = burst.next() { sum &+= Int(packet.flowID ?? 0) }
                line[1].store(line[1].load(ordering: .relaxed) &+ sum, ordering: .relaxed)
                line[0].store(line[0].load(ordering: .relaxed) &+ count, ordering: .releasing)
            }
        }
    }

    static func engine(policy: DispatchPolicy, workstreams: Int, bind: Bool = true) throws -> (NetISR, Sink) {
        var configuration = NetISRConfiguration(workstreamCount: workstreams)
        configuration.dispatchPolicy = policy
        configuration.bindThreads = bind
        let engine = try NetISR(configuration: configuration)
        let sink = Sink(workstreams: workstreams)
        try engine.register(
            ProtocolRegistration(name: "bench", number: 1, queueLimit: 1024, ordering: .flow(), handler: sink.handler))
        return (engine, sink)
    }

    /// Dispatch `items` packets in bursts of `burst` (1: single-packet calls); ns per packet,
    /// from the first dispatch until the handler has seen every packet.
    static func netisr(
        policy: DispatchPolicy, workstreams: Int, items: Int, burst: Int, start: Bool = true
    ) throws -> Double {
        let (engine, sink) = try engine(policy: policy, workstreams: workstreams)
        if start { try engine.start() }
        _ = peer_pin_current_thread(workstreams == 1 ? producerCPU : -1)
        let whenFull: QueueFullAction = start ? .wait : .drop
        var batch = PacketBatch(capacity: burst)
        let began = peer_now_ns()
        var sent = 0
        if burst == 1 {
            while sent < items {
                engine.dispatch(1, Packet(flowID: UInt32(truncatingIfNeeded: sent) & 0xFFFF_FFFE), whenFull: whenFull)
                sent += 1
            }
        } else {
            while sent < items {
                for offset in 0..<burst {
                    _ = batch.append(Packet(flowID: UInt32(truncatingIfNeeded: sent + offset) << 1))
                }
                engine.dispatch(1, batch: &batch, whenFull: whenFull)
                sent += burst
            }
        }
        if start {
            while sink.packets < sent { sched_yield() }
        }
        let ended = peer_now_ns()
        engine.stop(.discard)
        let handled = sink.packets
        let totals = engine.snapshot().totals
        precondition(totals.accountedFor == sent, "conservation failed in the benchmark")
        precondition(!start || handled == sent)
        return Double(ended - began) / Double(sent)
    }

    static func swiftClosureCall(items: Int) -> Double {
        let closures: [@Sendable (UInt64, UInt64) -> UInt64] = [{ $0 &+ $1 }, { $0 ^ $1 }]
        // Chosen at run time so the optimizer cannot see which closure runs.
        let chosen = closures[CommandLine.arguments.count > 1_000 ? 1 : 0]
        var sum: UInt64 = 0
        let began = peer_now_ns()
        for item in 0..<items { sum = chosen(sum, UInt64(item)) }
        let ended = peer_now_ns()
        blackHole(sum)
        return Double(ended - began) / Double(items)
    }

    // MARK: What a Swift user would pick instead

    static func gcd(items: Int) -> Double {
        let queue = DispatchQueue(label: "peer.gcd")
        let box = Counter()
        _ = peer_pin_current_thread(producerCPU)
        let began = peer_now_ns()
        for item in 0..<items { queue.async { box.add(item) } }
        queue.sync {}
        let ended = peer_now_ns()
        blackHole(UInt64(box.value))
        return Double(ended - began) / Double(items)
    }

    static func nio(group: MultiThreadedEventLoopGroup, items: Int) throws -> Double {
        let loop = group.next()
        let box = Counter()
        _ = peer_pin_current_thread(producerCPU)
        let began = peer_now_ns()
        for item in 0..<items { loop.execute { box.add(item) } }
        try loop.submit {}.wait()
        let ended = peer_now_ns()
        blackHole(UInt64(box.value))
        return Double(ended - began) / Double(items)
    }

    static func asyncStream(items: Int) -> Double {
        let (stream, continuation) = AsyncStream<Int>.makeStream(bufferingPolicy: .unbounded)
        let done = Atomic<UInt64>(0)
        Task.detached {
            var sum = 0
            for await item in stream { sum &+= item }
            blackHole(UInt64(sum))
            done.store(peer_now_ns(), ordering: .releasing)
        }
        _ = peer_pin_current_thread(producerCPU)
        let began = peer_now_ns()
        for item in 0..<items { continuation.yield(item) }
        continuation.finish()
        while done.load(ordering: .acquiring) == 0 { sched_yield() }
        return Double(done.load(ordering: .relaxed) - began) / Double(items)
    }

    /// A `Deque` behind a pthread mutex with a condition variable: the producer appends bursts
    /// under the lock and signals a sleeping consumer; the consumer takes everything at once.
    static func mutexDeque(items: Int, burst: Int) -> Double {
        let queue = LockedDeque()
        let done = Atomic<UInt64>(0)
        let consumer = PeerThread {
            _ = peer_pin_current_thread(consumerCPU)
            var taken = 0
            var sum = 0
            var local = Deque<Int>()
            while taken < items {
                queue.takeAll(into: &local)
                taken += local.count
                for item in local { sum &+= item }
                local.removeAll(keepingCapacity: true)
            }
            blackHole(UInt64(sum))
            done.store(peer_now_ns(), ordering: .releasing)
        }
        _ = peer_pin_current_thread(producerCPU)
        let began = peer_now_ns()
        var sent = 0
        while sent < items {
            let count = min(burst, items - sent)
            queue.append(sent..<(sent + count))
            sent += count
        }
        consumer.join()
        return Double(done.load(ordering: .relaxed) - began) / Double(items)
    }
}

/// Keeps a value alive past the optimizer.
@inline(never)
func blackHole(_ value: UInt64) {
    if value == 0x1234_5678_9ABC_DEF0 { print("") }
}

/// A counter touched only on one consumer thread at a time (serial queue, one event loop).
final class Counter: @unchecked Sendable {
    var value = 0
    func add(_ item: Int) { value &+= item }
}
