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

/// Counters the reader thread publishes for other threads.
final class LiveStatus: Sendable {
    let frames = Atomic<Int>(0)
    private let received = Atomic<UInt64>(0)
    private let dropped = Atomic<UInt64>(0)

    var kernel: (received: UInt64, dropped: UInt64) {
        (received.load(ordering: .relaxed), dropped.load(ordering: .relaxed))
    }

    func update(_ statistics: (received: UInt64, dropped: UInt64)) {
        received.store(statistics.received, ordering: .relaxed)
        dropped.store(statistics.dropped, ordering: .relaxed)
    }

    static func seconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
