// ReplayReport+IOStatistics: the traffic per interval of capture time (`--io-stat`) as CSV and
// as the JSON report's `io_stat` member.

import NetISR

extension ReplayReport {
    /// The intervals as CSV: `start,end,frames,bytes`, times in seconds from the first frame (six
    /// decimals), bytes on the wire; then, if frames fell beyond the last interval kept, a line
    /// saying how many. Empty but for the header without `ioStatistics`.
    public static func ioStatisticsCSV(_ result: ReplayResult) -> String {
        let intervals = result.ioStatistics?.intervals ?? []
        var out = TextBuffer(capacity: 40 + intervals.count * 40)
        out.append("start,end,frames,bytes\n")
        for interval in intervals {
            appendSeconds(interval.startMicroseconds, to: &out)
            out.append(UInt8(ascii: ","))
            appendSeconds(interval.endMicroseconds, to: &out)
            out.append(UInt8(ascii: ","))
            out.append(decimal: interval.frames)
            out.append(UInt8(ascii: ","))
            out.append(decimal: interval.bytes)
            out.append(UInt8(ascii: "\n"))
        }
        if let beyond = result.ioStatistics?.framesBeyond, beyond > 0 {
            out.append("# \(beyond) frames after the last of \(IOStatistics.maximumIntervals) intervals\n")
        }
        return out.text
    }

    /// `io_stat` for the JSON report: the interval and each interval's counts, times in µs.
    static func ioStatisticsJSON(_ statistics: IOStatistics) -> JSONValue {
        .object([
            ("interval_us", .int(Int(clamping: statistics.intervalMicroseconds))),
            ("frames_beyond", .int(statistics.framesBeyond)),
            (
                "intervals",
                .array(
                    statistics.intervals.map {
                        .object([
                            ("start_us", .int(Int(clamping: $0.startMicroseconds))),
                            ("end_us", .int(Int(clamping: $0.endMicroseconds))), ("frames", .int($0.frames)),
                            ("bytes", .int($0.bytes)),
                        ])
                    })
            ),
        ])
    }

    /// `microseconds` as seconds with six decimals.
    private static func appendSeconds(_ microseconds: UInt64, to out: inout TextBuffer) {
        out.append(decimal: microseconds / 1_000_000)
        out.append(UInt8(ascii: "."))
        let fraction = microseconds % 1_000_000
        var divisor: UInt64 = 100_000
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(fraction / divisor % 10))
            divisor /= 10
        }
    }
}
