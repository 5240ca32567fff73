// LiveView and LiveStatus: what a live capture shows while it runs. The reader thread owns the
// capture; it publishes the kernel's counters and its frame count through atomics (read by the
// metrics thread) and calls the live view every interval with a snapshot and the top flows it
// counted itself (the workstreams' tables are theirs until the capture ends).

import NetISR
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A periodic report during a live capture.
public struct LiveView: Sendable {
    /// What one report holds.
    public struct Frame: Sendable {
        /// Seconds since the capture started.
        public var elapsed: Double
        /// Frames read so far.
        public var frames: Int
        /// Their wire bytes.
        public var wireBytes: Int
        /// The kernel's counters so far.
        public var kernel: (received: UInt64, dropped: UInt64)
        /// The engine's counters now.
        public var snapshot: NetISRSnapshot
        /// The five flows with the most bytes so far.
        public var topFlows: [FlowRecord]
    }

    /// Seconds between reports.
    public var interval: Double
    /// Called from the reader thread.
    public var report: @Sendable (Frame) -> Void

    /// A view reporting every `interval` seconds.
    public init(interval: Double, report: @escaping @Sendable (Frame) -> Void) {
        self.interval = interval
        self.report = report
    }
}

/// When a live capture ends.
struct LiveLimits: Sendable {
    var deadline: Double?
    var count: Int?
    var started: Double
}

/// Counters the reader threads publish for other threads: frames (all readers) and each reader's
/// kernel counters.
final class LiveStatus: @unchecked Sendable {  // unchecked: atomics in memory it owns
    let frames = Atomic<Int>(0)
    /// Wire bytes read, added once per ring block.
    let wireBytes = Atomic<Int>(0)
    private let counters: UnsafeMutablePointer<Atomic<UInt64>>
    private let readers: Int

    init(readers: Int) {
        self.readers = readers
        counters = .allocate(capacity: 2 * readers)
        for index in 0..<(2 * readers) { (counters + index).initialize(to: Atomic(0)) }
    }

    deinit {
        counters.deinitialize(count: 2 * readers)
        counters.deallocate()
    }

    /// The kernel's counters, summed over readers.
    var kernel: (received: UInt64, dropped: UInt64) {
        var received: UInt64 = 0
        var dropped: UInt64 = 0
        for reader in 0..<readers {
            received += counters[2 * reader].load(ordering: .relaxed)
            dropped += counters[2 * reader + 1].load(ordering: .relaxed)
        }
        return (received, dropped)
    }

    func update(_ reader: Int, _ statistics: (received: UInt64, dropped: UInt64)) {
        counters[2 * reader].store(statistics.received, ordering: .relaxed)
        counters[2 * reader + 1].store(statistics.dropped, ordering: .relaxed)
    }

    static func seconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
