// DelayHistogram: how long live packets waited between the kernel's receive timestamp and their
// handler, per protocol, in fixed power-of-two buckets (1 µs … ~1 s). Each workstream writes its
// own counters (plain relaxed load + store, single writer); the metrics endpoint reads them from
// another thread, so they are atomics.

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

final class DelayHistogram: @unchecked Sendable {  // unchecked: atomics in memory it owns, one writer per workstream
    /// Upper bounds in microseconds: 1, 2, 4, … 2^20; one more bucket for everything above.
    static let bounds: [Int] = (0...20).map { 1 << $0 }
    static let protocols = ["ip", "ip6", "arp"]

    private let counters: UnsafeMutablePointer<Atomic<Int>>
    private let workstreams: Int
    private static var stride: Int { bounds.count + 3 }  // buckets, +Inf, sum (ns), count

    init(workstreams: Int) {
        self.workstreams = workstreams
        let count = workstreams * Self.protocols.count * Self.stride
        counters = .allocate(capacity: count)
        for index in 0..<count { (counters + index).initialize(to: Atomic(0)) }
    }

    deinit {
        counters.deinitialize(count: workstreams * Self.protocols.count * Self.stride)
        counters.deallocate()
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// Records one delay. Only the workstream's own handler calls this.
    @inline(__always)
    func record(workstream: Int, protocol index: Int, captured: UInt64, now: UInt64) {
        let delay = now > captured ? Int(now - captured) : 0
        let microseconds = delay / 1_000
        var bucket = Self.bounds.count
        if microseconds <= 1 {
            bucket = 0
        } else {
            let log = Int.bitWidth - (microseconds - 1).leadingZeroBitCount
            if log < Self.bounds.count { bucket = log }
        }
        let base = (workstream * Self.protocols.count + index) * Self.stride
        add(base + bucket, 1)
        add(base + Self.bounds.count + 1, delay)
        add(base + Self.bounds.count + 2, 1)
    }

    @inline(__always)
    private func add(_ index: Int, _ amount: Int) {
        counters[index].store(counters[index].load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    /// Per protocol: cumulative bucket counts (Prometheus `le` semantics, +Inf last), sum in
    /// seconds, count — summed over workstreams.
    func snapshot() -> [(name: String, cumulative: [Int], sumSeconds: Double, count: Int)] {
        Self.protocols.enumerated().map { index, name in
            var buckets = [Int](repeating: 0, count: Self.bounds.count + 1)
            var sum = 0
            var count = 0
            for workstream in 0..<workstreams {
                let base = (workstream * Self.protocols.count + index) * Self.stride
                for bucket in 0...Self.bounds.count {
                    buckets[bucket] += counters[base + bucket].load(ordering: .relaxed)
                }
                sum += counters[base + Self.bounds.count + 1].load(ordering: .relaxed)
                count += counters[base + Self.bounds.count + 2].load(ordering: .relaxed)
            }
            var running = 0
            let cumulative = buckets.map { value -> Int in
                running += value
                return running
            }
            return (name, cumulative, Double(sum) / 1e9, count)
        }
    }
}
