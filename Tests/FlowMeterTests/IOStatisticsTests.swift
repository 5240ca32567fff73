// Traffic per interval of capture time (`--io-stat`): the counting rules on hand-made timestamps,
// and the intervals against tshark's `-z io,stat` on a synthesized capture and on tcpdump's
// captures whose timestamps never go backwards (tshark's rows for the others follow rules of
// their own). The tshark checks skip with a message when it is not installed (.ci/run installs it).

import PacketWire
import TestSupport
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct IOStatisticsTests {
    static let second: UInt64 = 1_000_000_000

    @Test func framesFallInWholeMicrosecondIntervalsFromTheFirst() {
        var statistics = IOStatistics(interval: 0.05)
        let origin: UInt64 = 1_700_000_000 * Self.second + 123
        // (offset in ns, bytes): the first interval ends at 50,000 µs; 49,999,999 ns is 49,999 µs.
        for (offset, bytes) in [(0, 60), (49_999_999, 70), (50_000_000, 80), (170_000_500, 90)] as [(UInt64, Int)] {
            statistics.count(timestamp: origin + offset, wireLength: bytes)
        }
        statistics.count(timestamp: origin - Self.second, wireLength: 100)  // before the first: the first interval
        #expect(statistics.origin == origin)
        #expect(
            statistics.intervals == [
                .init(startMicroseconds: 0, endMicroseconds: 50_000, frames: 3, bytes: 230),
                .init(startMicroseconds: 50_000, endMicroseconds: 100_000, frames: 1, bytes: 80),
                .init(startMicroseconds: 100_000, endMicroseconds: 150_000, frames: 0, bytes: 0),
                .init(startMicroseconds: 150_000, endMicroseconds: 170_000, frames: 1, bytes: 90),
            ])
        #expect(IOStatistics(interval: 1).intervals.isEmpty)
    }

    @Test func aCaptureSpanningCenturiesCostsBoundedMemory() {
        var statistics = IOStatistics(interval: 0.000_001)
        statistics.count(timestamp: 0, wireLength: 1)
        statistics.count(timestamp: UInt64(IOStatistics.maximumIntervals - 1) * 1_000, wireLength: 2)
        statistics.count(timestamp: .max, wireLength: 3)
        statistics.count(timestamp: UInt64(IOStatistics.maximumIntervals) * 1_000, wireLength: 4)
        #expect(statistics.intervals.count == IOStatistics.maximumIntervals && statistics.framesBeyond == 2)
        #expect(statistics.intervals.reduce(0) { $0 + $1.bytes } == 3)
        #expect(IOStatistics(interval: .nan).intervalMicroseconds == 1)
        #expect(IOStatistics(interval: 1e30).intervalMicroseconds == 1_000_000_000_000_000_000)
    }

    /// tshark's rows for `path` at `interval` seconds: (frames, bytes) each.
    static func tshark(_ path: String, interval: String) -> [[Int]]? {
        guard let run = Shell.run("tshark -n -q -r '\(path)' -z io,stat,\(interval) 2>/dev/null"), run.status == 0
        else { return nil }
        return run.output.split(separator: "\n").compactMap { line in
            let cells = line.split(separator: "|").map { $0.trimmingPrefix(" ") }
            guard cells.count == 3, cells[0].contains("<>") else { return nil }
            let counts = cells.dropFirst().compactMap { Int($0.split(separator: " ").first ?? "") }
            return counts.count == 2 ? counts : nil
        }
    }

    static func ours(_ path: String, interval: Double, threads: Int = 2) throws -> ReplayResult {
        var configuration = ReplayConfiguration()
        configuration.threads = threads
        configuration.ioInterval = interval
        return try Replay(configuration).run(files: [path])
    }

    /// Frames a read filter skips are in no interval; the rest are, the same on any thread count.
    @Test func onlyTheFramesKeptAreCounted() throws {
        guard ReplayFilterTests.libpcapPresent() else { return }
        let path = try SynthCapture.write(packets: 5_000, flows: 100, seed: 4, format: .pcap(nanosecond: true))
        defer { unlink(path) }
        var configuration = ReplayConfiguration()
        configuration.ioInterval = 0.01
        configuration.filter = "udp"
        let result = try Replay(configuration).run(files: [path])
        let intervals = try #require(result.ioStatistics?.intervals)
        #expect(result.filteredFrames > 0 && result.frames > 0)
        #expect(intervals.reduce(0) { $0 + $1.frames } == result.frames)
        #expect(intervals.reduce(0) { $0 + $1.bytes } == result.wireBytes)
    }

    @Test func intervalsEqualTsharksOnASynthesizedCapture() throws {
        guard Shell.has("tshark") else {
            print("tshark is not installed; skipping")
            return
        }
        let path = try SynthCapture.write(packets: 20_000, flows: 300, seed: 21, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        for (interval, text) in [(0.03, "0.03"), (0.007, "0.007"), (1.0, "1")] {
            let result = try Self.ours(path, interval: interval)
            let rows = try #require(result.ioStatistics?.intervals)
            #expect(rows.map { [$0.frames, $0.bytes] } == Self.tshark(path, interval: text))
            #expect(rows.reduce(0) { $0 + $1.frames } == 20_000 && rows.reduce(0) { $0 + $1.bytes } == result.wireBytes)
            // Counted by the reader: the same on one workstream as on three.
            #expect(try Self.ours(path, interval: interval, threads: 1).ioStatistics == result.ioStatistics)
        }
    }

    /// Every record's timestamp, if the file reads to its end and has at most 5,000 records.
    static func timestamps(_ path: String) -> [UInt64]? {
        var timestamps: [UInt64] = []
        do {
            let reader = try CaptureReader(path: path)
            while try reader.read(maximum: 256, { timestamps.append($0.timestamp) }) > 0 {
                if timestamps.count > 5_000 { return nil }
            }
        } catch { return nil }
        return timestamps
    }

    @Test func intervalsEqualTsharksOnTcpdumpCapturesInTimeOrder() throws {
        guard let root = SharedFixtures.root else {
            print(SharedFixtures.missingMessage)
            return
        }
        guard Shell.has("tshark") else {
            print("tshark is not installed; skipping")
            return
        }
        // Captures read to their end whose timestamps never go backwards and do not all coincide
        // (tshark prints no interval then; we print one); every fourth of them, as tshark takes
        // a second to start.
        let eligible = SharedFixtures.list("\(root)/captures/tcpdump").filter { capture in
            guard let timestamps = Self.timestamps("\(root)/captures/tcpdump/\(capture)"),
                let first = timestamps.first, timestamps.last != first
            else { return false }
            return zip(timestamps, timestamps.dropFirst()).allSatisfy { $0 <= $1 }
        }
        var compared = 0
        for (index, capture) in eligible.enumerated() where index % 4 == 0 && compared < 12 {
            let path = "\(root)/captures/tcpdump/\(capture)"
            guard let theirs = Self.tshark(path, interval: "0.5") else { continue }
            let ours = try Self.ours(path, interval: 0.5).ioStatistics?.intervals.map { [$0.frames, $0.bytes] }
            #expect(ours == theirs, "\(capture)")
            compared += 1
        }
        #expect(compared >= 10)
        print("compared \(compared) tcpdump captures' intervals with tshark's")
    }
}
