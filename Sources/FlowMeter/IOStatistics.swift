// IOStatistics: frames and bytes per interval of capture time, as tshark's `-z io,stat,INTERVAL`
// counts them — the traffic's shape over time beside the flow tables' totals.
//
// The reader counts each frame it keeps (after a read filter) as it reads it, in capture order,
// so no workstream takes part and the result does not depend on the thread count. Times are
// relative to the first frame and counted in whole microseconds, as tshark's are (an interval of
// 0.05 s is 50,000 µs; a frame 0.049 999 9 s in is in the first). Memory is bounded: past
// `maximumIntervals` intervals (a damaged or hostile capture's timestamps can span centuries),
// frames are counted as beyond the table.

/// Frames and bytes (lengths on the wire) per interval of capture time.
public struct IOStatistics: Sendable, Equatable {
    /// An interval's counts.
    public struct Interval: Sendable, Equatable {
        /// Microseconds from the first frame to the interval's start.
        public var startMicroseconds: UInt64
        /// Microseconds from the first frame to its end: the next interval's start, or for the
        /// last one the latest frame's time.
        public var endMicroseconds: UInt64
        /// Frames in it.
        public var frames: Int
        /// Their bytes on the wire.
        public var bytes: Int
    }

    /// The most intervals kept.
    public static let maximumIntervals = 1 << 20

    /// The interval length in microseconds (at least 1).
    public let intervalMicroseconds: UInt64
    /// The first frame's timestamp (ns since the epoch); nil before any frame.
    public private(set) var origin: UInt64?
    /// The latest frame's offset from the first (µs).
    private var latest: UInt64 = 0
    private var frames: [Int] = []
    private var bytes: [Int] = []
    /// Frames later than the last interval kept, not in any interval.
    public private(set) var framesBeyond = 0

    /// Counts in intervals of `seconds` (rounded to whole microseconds, at least one).
    public init(interval seconds: Double) {
        let microseconds = seconds.isFinite ? (seconds * 1e6).rounded() : 1
        intervalMicroseconds =
            microseconds >= 1 ? (microseconds < 1e18 ? UInt64(microseconds) : 1_000_000_000_000_000_000) : 1
    }

    /// Counts a frame. Frames earlier than the first count in the first interval.
    public mutating func count(timestamp: UInt64, wireLength: Int) {
        let origin = self.origin ?? timestamp
        self.origin = origin
        let offset = timestamp > origin ? (timestamp - origin) / 1_000 : 0
        let index = offset / intervalMicroseconds
        guard index < Self.maximumIntervals else {
            framesBeyond += 1
            return
        }
        latest = max(latest, offset)
        if Int(index) >= frames.count {
            frames += repeatElement(0, count: Int(index) + 1 - frames.count)
            bytes += repeatElement(0, count: Int(index) + 1 - bytes.count)
        }
        frames[Int(index)] += 1
        bytes[Int(index)] += wireLength
    }

    /// Every interval from the first frame's to the latest frame's, empty ones included.
    public var intervals: [Interval] {
        frames.indices.map { index in
            let start = UInt64(index) * intervalMicroseconds
            return Interval(
                startMicroseconds: start, endMicroseconds: min(start + intervalMicroseconds, latest),
                frames: frames[index], bytes: bytes[index])
        }
    }
}
