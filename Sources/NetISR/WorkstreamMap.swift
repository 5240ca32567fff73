// WorkstreamMap: where source and flow ordering place a packet — its id mod the workstream count
// N, as FreeBSD's netisr does — computed without a division per packet (Lemire, Kaser & Kurz,
// "Faster remainder by direct computation", 2019): one 64-bit multiply and the high half of a
// second. Exact for every 32-bit id and every N < 2^32.

/// Where the engine's source and flow ordering place packets among its workstreams.
///
/// Get an engine's map from ``NetISR/workstreamMap``. A producer that keeps state per workstream
/// for the packets it dispatches — who gives their buffers back, say — places each packet with
/// it exactly as the engine will, without repeating the engine's rule.
public struct WorkstreamMap: Sendable {
    /// The number of workstreams.
    public let workstreamCount: Int
    @usableFromInline let divisor: UInt64
    @usableFromInline let multiplier: UInt64

    /// The map for `workstreamCount` workstreams (at least 1).
    public init(workstreamCount: Int) {
        precondition(workstreamCount > 0, "a map needs at least one workstream")
        self.workstreamCount = workstreamCount
        divisor = UInt64(workstreamCount)
        multiplier = UInt64.max / UInt64(workstreamCount) &+ 1
    }

    /// The workstream flow ordering places a packet with flow id `flowID` on.
    @inlinable
    public func workstream(forFlowID flowID: UInt32) -> Int { remainder(flowID) }

    /// The workstream source ordering (and flow ordering, for a packet without a flow id) places a
    /// packet from source `sourceID` on.
    @inlinable
    public func workstream(forSourceID sourceID: UInt32) -> Int { remainder(sourceID) }

    /// `value mod workstreamCount`.
    @inlinable @inline(__always)
    func remainder(_ value: UInt32) -> Int {
        let low = multiplier &* UInt64(value)
        return Int(truncatingIfNeeded: low.multipliedFullWidth(by: divisor).high)
    }
}
