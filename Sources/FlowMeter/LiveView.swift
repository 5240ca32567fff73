// LiveView and LiveStatus: what a live capture shows while it runs. The reader thread owns the
// capture; it publishes the kernel's counters and its frame count through atomics (read by the
// metrics thread) and calls the live view every interval with a snapshot and the top flows it
// counted itself (the workstreams' tables are theirs until the capture ends).

import NetISR
import PacketWire
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
        /// Wire bytes so far handed to each workstream's ip, ip6 and arp.
        public var protocolBytes: [(workstream: Int, protocol: String, bytes: Int)]
        /// The kernel's counters so far.
        public var kernel: (received: UInt64, dropped: UInt64)
        /// The engine's counters now.
        public var snapshot: NetISRSnapshot
        /// The five flows with the most bytes since the last report (with fanout, among the first
        /// reader's flows).
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
    /// Wire bytes per workstream × (ip, ip6, arp), added once per ring block.
    private let protocolBytes: UnsafeMutablePointer<Atomic<Int>>
    private let workstreams: Int
    static let protocols = ["ip", "ip6", "arp"]

    init(readers: Int, workstreams: Int) {
        self.readers = readers
        self.workstreams = workstreams
        counters = .allocate(capacity: 2 * readers)
        for index in 0..<(2 * readers) { (counters + index).initialize(to: Atomic(0)) }
        protocolBytes = .allocate(capacity: workstreams * Self.protocols.count)
        for index in 0..<(workstreams * Self.protocols.count) { (protocolBytes + index).initialize(to: Atomic(0)) }
    }

    deinit {
        counters.deinitialize(count: 2 * readers)
        counters.deallocate()
        protocolBytes.deinitialize(count: workstreams * Self.protocols.count)
        protocolBytes.deallocate()
    }

    /// The slot of a frame's first network layer in `protocolBytes`, nil for what ether keeps.
    static func protocolIndex(_ network: NetworkProtocol) -> Int? {
        switch network {
        case .ipv4: 0
        case .ipv6: 1
        case .arp: 2
        default: nil
        }
    }

    /// Adds a reader's per-block counts (workstream × protocol, as `protocolIndex`) and zeroes them.
    func addProtocolBytes(_ counts: inout [Int]) {
        for index in counts.indices where counts[index] != 0 {
            protocolBytes[index].wrappingAdd(counts[index], ordering: .relaxed)
            counts[index] = 0
        }
    }

    /// Wire bytes so far per workstream and protocol.
    var bytesByProtocol: [(workstream: Int, protocol: String, bytes: Int)] {
        (0..<workstreams).flatMap { workstream in
            Self.protocols.indices.map { index in
                (
                    workstream, Self.protocols[index],
                    protocolBytes[workstream * Self.protocols.count + index].load(ordering: .relaxed)
                )
            }
        }
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
