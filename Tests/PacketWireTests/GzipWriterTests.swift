// Writing gzip-compressed captures (`CaptureWriter` paths ending in `.gz`): what GzipEncoder makes
// decompresses to exactly its input — in our decoder and in gzip itself — for empty, tiny,
// repetitive, incompressible and mixed inputs given in blocks of every size; incompressible data
// costs only stored blocks' headers; and compressed captures, rotated or not, read back as the
// plain ones.

import TestSupport
import Testing

@testable import PacketWire

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct GzipWriterTests {
    /// `input` compressed in blocks of `blockSize`.
    static func encode(_ input: [UInt8], blockSize: Int) -> [UInt8] {
        let encoder = GzipEncoder()
        var output: [UInt8] = []
        var offset = 0
        repeat {
            let end = min(offset + blockSize, input.count)
            output += input[offset..<end].withUnsafeBytes { encoder.compress($0) }
            offset = end
        } while offset < input.count
        return output + encoder.finish()
    }

    /// `compressed` decompressed by our decoder (nil on an error), asking for `reads` bytes at a
    /// time, in turn.
    static func decode(_ compressed: [UInt8], reads: [Int] = [1 << 16]) -> [UInt8]? {
        let source = GzipCaptureSource(MemoryCaptureSource(compressed), prefix: [])
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: reads.max()!)
        var call = 0
        do {
            while true {
                let wanted = reads[call % reads.count]
                call += 1
                let count = try chunk.withUnsafeMutableBytes { try source.read(into: $0.baseAddress!, count: wanted) }
                if count == 0 { return output }
                output += chunk[0..<count]
            }
        } catch { return nil }
    }

    /// The decoder keeps the last 32 KiB of each read's output for matches that reach back past
    /// the next read's: reads of every size — single bytes, shorter than a match or its distance,
    /// around the window's size — give the input, from our encoder and from gzip's (levels 1 and 9).
    @Test(arguments: [[1], [3, 7, 8, 9], [31, 1, 258], [4_096], [32_767, 5], [32_768], [40_000, 2], [100_003]])
    func decodedInReadsOfAnySizeIsTheInput(reads: [Int]) throws {
        // Each input's first 70,000 bytes: two windows and more.
        for (name, whole) in Self.inputs {
            let input = Array(whole.prefix(70_000))
            var encodings = [("ours", Self.encode(input, blockSize: 65_536))]
            for level in [1, 9] {
                let tag = "reads-\(reads.map(String.init).joined(separator: "_"))-\(name.filter(\.isLetter))-\(level)"
                if let compressed = try GzipCaptureTests.throughGzip(input, options: "-\(level)", tag: tag) {
                    encodings.append(("gzip -\(level)", compressed))
                }
            }
            for (encoder, compressed) in encodings {
                let decoded = Self.decode(compressed, reads: reads) == input
                #expect(decoded, "\(name) from \(encoder) in reads of \(reads)")
            }
        }
    }

    static let inputs: [(name: String, bytes: [UInt8])] = {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog; ", count: 3_000).utf8)
        // Runs of repeated short words with random bytes between: matches of every length and
        // distance, literals of both code lengths.
        var mixed: [UInt8] = []
        while mixed.count < 300_000 {
            mixed += Array(repeating: UInt8.random(in: 0...255, using: &generator), count: Int.random(in: 1...300))
            mixed += random[Int.random(in: 0..<190_000)...].prefix(Int.random(in: 1...2_000))
            mixed += text.prefix(Int.random(in: 0...500))
        }
        return [
            ("empty", []), ("one byte", [42]), ("three", [1, 2, 3]), ("zeros", [UInt8](repeating: 0, count: 300_000)),
            ("random", random), ("text", text), ("mixed", mixed),
        ]
    }()

    @Test(arguments: [1_000, 65_535, 65_536, 262_144])
    func encodedBytesDecodeToTheirInput(blockSize: Int) throws {
        for (name, input) in Self.inputs {
            let compressed = Self.encode(input, blockSize: blockSize)
            // Compared outside #expect: a failure would print both arrays (300,000 elements).
            let decoded = Self.decode(compressed) == input
            #expect(decoded, "\(name) in blocks of \(blockSize)")
            let tag = "out-\(blockSize)-\(name.filter(\.isLetter))"
            if let gunzipped = try GzipCaptureTests.throughGzip(compressed, options: "-d", tag: tag) {
                let same = gunzipped == input
                #expect(same, "gzip: \(name) in blocks of \(blockSize)")
            }
            if name == "random" {
                // Stored, not expanded: a header per block of at most 64 KiB, plus the member's.
                let blocks = (input.count + blockSize - 1) / blockSize * ((blockSize + 65_534) / 65_535)
                #expect(compressed.count <= input.count + 6 * blocks + 10 + 8 + 2)
            }
            if name == "zeros" || name == "text" { #expect(compressed.count * 20 < input.count, "\(name)") }
        }
    }

    /// Every record of the capture at `path`.
    static func records(_ path: String) throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        let reader = try CaptureReader(path: path)
        while try reader.read(
            maximum: 256, { records.append(Array($0.bytes) + [UInt8(truncatingIfNeeded: $0.timestamp)]) }) > 0
        {}
        return records
    }

    @Test(arguments: ["pcap", "pcapng"])
    func compressedCapturesReadBackAsThePlainOnes(format: String) throws {
        let base = "/tmp/netisr-gzip-writer-\(getpid()).\(format)"
        let rotation = CaptureRotation(maximumBytes: 2_000_000)
        defer {
            unlink(base)
            unlink(base + ".gz")
            for number in 1...10 { unlink(rotation.path(base + ".gz", file: number)) }
        }
        #expect(rotation.path(base + ".gz", file: 3).hasSuffix("_00003.\(format).gz"))
        #expect(CaptureWriter.Format.forPath(base + ".gz") == .forPath(base))
        var writers = [
            try CaptureWriter(path: base, format: .forPath(base)),
            try CaptureWriter(path: base + ".gz", format: .forPath(base + ".gz")),
            try CaptureWriter(path: base + ".gz", format: .forPath(base + ".gz"), rotation: rotation),
        ]
        var synthesizer = TrafficSynthesizer(.init(packets: 20_000, flows: 200, seed: 5))
        try synthesizer.generate { frame, time in
            for writer in writers { try writer.write(frame, timestamp: time, linkType: .ethernet) }
        }
        for writer in writers { try writer.close() }
        let plain = try Self.records(base)
        #expect(plain.count == 20_000)
        let compressedSame = try Self.records(base + ".gz") == plain
        #expect(compressedSame)
        let sizes = [base, base + ".gz"].map { SharedFixtures.bytes($0)?.count ?? 0 }
        #expect(sizes[1] > 0 && sizes[1] * 4 < sizes[0])
        // Rotated: sizes counted before compression, each file a complete gzip capture.
        let rotated = writers.removeLast()
        #expect(rotated.files >= 4)
        var joined: [[UInt8]] = []
        for number in 1...rotated.files { joined += try Self.records(rotation.path(base + ".gz", file: number)) }
        let joinedSame = joined == plain
        #expect(joinedSame)
    }
}
