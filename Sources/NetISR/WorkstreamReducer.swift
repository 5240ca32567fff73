// WorkstreamReducer: `value mod N` for the workstream count N without a division per packet
// (Lemire, Kaser & Kurz, "Faster remainder by direct computation", 2019): one 64-bit multiply
// and the high half of a second. Exact for every 32-bit value and N < 2^32.

struct WorkstreamReducer: Sendable {
    let divisor: UInt64
    private let multiplier: UInt64

    init(_ divisor: Int) {
        precondition(divisor > 0)
        self.divisor = UInt64(divisor)
        self.multiplier = UInt64.max / UInt64(divisor) &+ 1
    }

    @inline(__always)
    func remainder(_ value: UInt32) -> Int {
        let low = multiplier &* UInt64(value)
        return Int(truncatingIfNeeded: low.multipliedFullWidth(by: divisor).high)
    }
}
