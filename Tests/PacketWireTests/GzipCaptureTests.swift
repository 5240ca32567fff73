// Gzip-compressed captures: read as they decompress, they give the records of the plain file —
// compressed by gzip itself at every level (dynamic Huffman blocks; fixed ones for a few packets;
// stored blocks for bytes that do not compress), stored blocks made by hand, several members with
// padding after them, a pipe — and damage (truncation anywhere, bit flips, a wrong CRC) is a
// CaptureError, never a trap or a hang. Skips with a message where gzip is not installed (Debian
// always has it).

import TestSupport
import Testing

@testable import PacketWire

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct GzipCaptureTests {
    /// A synthesized capture's bytes (`randomPayloads`: UDP datagrams of random bytes instead).
    static func capture(packets: Int, randomPayloads: Bool = false) throws -> [UInt8] {
        let path = "/tmp/netisr-gzip-\(getpid())-\(packets)-\(randomPayloads).pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: false))
        if randomPayloads {
            var generator = SystemRandomNumberGenerator()
            for index in 0..<packets {
                let payload = (0..<1_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let frame = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp(payload: payload)))
                try frame.withUnsafeBytes {
                    try writer.write($0, timestamp: UInt64(index) * 1_000, linkType: .ethernet)
                }
            }
        } else {
            var synthesizer = TrafficSynthesizer(.init(packets: packets, flows: packets / 10 + 1, seed: 12))
            try synthesizer.generate { frame, time in try writer.write(frame, timestamp: time, linkType: .ethernet) }
        }
        try writer.close()
        return try #require(SharedFixtures.bytes(path))
    }

    /// `bytes` compressed by gzip at `level`; nil without gzip.
    static func gzip(_ bytes: [UInt8], level: Int = 6) throws -> [UInt8]? {
        try throughGzip(bytes, options: "-\(level)", tag: "in-\(bytes.count)-\(level)")
    }

    /// What `gzip OPTIONS -c` makes of `bytes` (through files named after `tag`, which must be
    /// unique among the tests running at once); nil without gzip, empty if gzip fails.
    static func throughGzip(_ bytes: [UInt8], options: String, tag: String) throws -> [UInt8]? {
        guard Shell.has("gzip") else { return nil }
        let path = "/tmp/netisr-gzip-\(getpid())-\(tag)"
        defer {
            unlink(path)
            unlink(path + ".out")
        }
        let file = try #require(fopen(path, "w"))
        fwrite(bytes, 1, bytes.count, file)
        fclose(file)
        guard Shell.run("gzip \(options) -c '\(path)' > '\(path).out'")?.status == 0 else { return [] }
        return SharedFixtures.bytes(path + ".out")
    }

    /// A synthesized capture and its gzip; nil (saying why) without gzip.
    static func compressedCapture(packets: Int) throws -> (plain: [UInt8], compressed: [UInt8])? {
        let plain = try capture(packets: packets)
        guard let compressed = try gzip(plain) else {
            print("gzip is not installed; skipping")
            return nil
        }
        return (plain, compressed)
    }

    /// Every record of a capture at `path`, as (bytes, timestamp), and the error that ended it.
    static func records(_ path: String) -> (records: [[UInt8]], error: CaptureError?) {
        var records: [[UInt8]] = []
        do {
            let reader = try CaptureReader(path: path, bufferSize: 1 << 16)
            while try reader.read(
                maximum: 100, { records.append(Array($0.bytes) + Frame.be32(UInt32($0.timestamp % 1_000_000_007))) })
                > 0
            {}
            return (records, nil)
        } catch let error as CaptureError {
            return (records, error)
        } catch {
            Issue.record("not a CaptureError: \(error)")
            return (records, nil)
        }
    }

    static func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = "/tmp/netisr-gzip-\(getpid())-\(name)"
        let file = try #require(fopen(path, "w"))
        fwrite(bytes, 1, bytes.count, file)
        fclose(file)
        return path
    }

    @Test func crc32IsTheIEEEChecksum() {
        var crc = CRC32()
        for byte in Array("123456789".utf8) { crc.add(byte) }
        #expect(crc.value == 0xCBF4_3926)
    }

    @Test(arguments: [(3_000, false), (5, false), (40, true)])
    func aCompressedCaptureReadsAsThePlainOne(packets: Int, randomPayloads: Bool) throws {
        let plain = try Self.capture(packets: packets, randomPayloads: randomPayloads)
        guard try Self.gzip(plain) != nil else {
            print("gzip is not installed; skipping")
            return
        }
        let plainPath = try Self.write(plain, "plain-\(packets)")
        defer { unlink(plainPath) }
        let expected = Self.records(plainPath)
        #expect(expected.error == nil && expected.records.count == packets)
        for level in [1, 6, 9] {
            let compressed = try #require(try Self.gzip(plain, level: level))
            // Random payloads do not compress: gzip stores those blocks.
            if randomPayloads { #expect(compressed.count > plain.count * 9 / 10) }
            let path = try Self.write(compressed, "z\(packets)-\(level).gz")
            defer { unlink(path) }
            let read = Self.records(path)
            #expect(read.error == nil, "level \(level): \(String(describing: read.error))")
            #expect(read.records == expected.records, "level \(level)")
        }
    }

    @Test func membersPaddingAndPipesReadAsOneStream() throws {
        let plain = try Self.capture(packets: 400)
        guard let first = try Self.gzip(Array(plain[..<7_777])), let second = try Self.gzip(Array(plain[7_777...]))
        else {
            print("gzip is not installed; skipping")
            return
        }
        let plainPath = try Self.write(plain, "members-plain")
        let path = try Self.write(first + second + [0, 0, 0, 0], "members.gz")
        defer {
            unlink(plainPath)
            unlink(path)
        }
        let expected = Self.records(plainPath)
        let read = Self.records(path)
        #expect(read.error == nil && read.records == expected.records && read.records.count == 400)
        // From a pipe, too.
        let netisr = try #require(Shell.builtExecutable("netisr"))
        let piped = try #require(Shell.run("cat '\(path)' | '\(netisr)' replay - --quiet --json"))
        #expect(piped.status == 0 && piped.output.hasPrefix("{\"frames\":400,"))
    }

    /// Progress through a compressed file is through its compressed bytes, of its size.
    @Test func progressCountsTheCompressedFile() throws {
        guard let (plain, compressed) = try Self.compressedCapture(packets: 2_000) else { return }
        let path = try Self.write(compressed, "progress.gz")
        defer { unlink(path) }
        let reader = try CaptureReader(path: path, bufferSize: 1 << 16)
        var seen: [Int] = []
        while try reader.read(maximum: 50, { _ in }) > 0 {
            #expect(reader.fileProgress.total == compressed.count)
            seen.append(reader.fileProgress.read)
        }
        #expect(seen == seen.sorted() && seen.count > 10 && seen.first! < compressed.count)
        #expect(reader.fileProgress.read == compressed.count && reader.bytesRead == plain.count)
        #expect(reader.size == nil)
    }

    @Test func damageIsAnErrorAtItsOffsetNeverATrap() throws {
        guard let (plain, compressed) = try Self.compressedCapture(packets: 300) else { return }
        let plainPath = try Self.write(plain, "damage-plain")
        defer { unlink(plainPath) }
        let expected = Self.records(plainPath).records
        // Cut anywhere: the records before the cut, then an error (never all of them, no trap).
        for cut in stride(from: 1, to: compressed.count, by: max(1, compressed.count / 97)) {
            let path = try Self.write(Array(compressed[..<cut]), "cut.gz")
            defer { unlink(path) }
            let read = Self.records(path)
            #expect(read.error != nil, "cut at \(cut)")
            #expect(read.records.count < expected.count && Array(expected.prefix(read.records.count)) == read.records)
        }
        // A wrong CRC is found at the trailer.
        var badCRC = compressed
        badCRC[badCRC.count - 8] ^= 0x01
        let crcPath = try Self.write(badCRC, "crc.gz")
        defer { unlink(crcPath) }
        let crcRead = Self.records(crcPath)
        #expect(crcRead.error?.code == .damagedCompression && crcRead.error?.offset == compressed.count - 8)
        #expect(crcRead.error?.message == "damaged gzip data: gzip CRC-32 mismatch")
        // Bits flipped anywhere past the header: an error or (where the flip changes nothing
        // checked) the same records; never a trap.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<150 {
            var damaged = compressed
            let position = Int.random(in: 10..<damaged.count, using: &generator)
            damaged[position] ^= UInt8(1) << UInt8.random(in: 0...7, using: &generator)
            let path = try Self.write(damaged, "flip.gz")
            defer { unlink(path) }
            let read = Self.records(path)
            #expect(read.error != nil || read.records == expected, "flip at \(position)")
        }
    }

    /// Stored blocks made by hand: their bytes come out as they are, in blocks of any size (one
    /// byte; across the 64 KiB input buffer; the largest, 65,535); a length whose check fails is
    /// refused; a member cut inside a block's data is an error at the cut, after the records
    /// before it.
    @Test func storedBlocksAreCopied() throws {
        let plain = try Self.capture(packets: 400, randomPayloads: true)
        #expect(plain.count > 1 << 17)
        var crc = CRC32()
        plain.withUnsafeBufferPointer { crc.add($0) }
        func le(_ value: UInt32, _ count: Int) -> [UInt8] {
            (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        }
        func member(blockSize: Int, checkFails: Bool = false) -> [UInt8] {
            var bytes: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3]
            for start in stride(from: 0, to: plain.count, by: blockSize) {
                let block = plain[start..<min(start + blockSize, plain.count)]
                let length = UInt32(block.count)
                bytes.append(start + blockSize >= plain.count ? 1 : 0)
                bytes += le(length, 2) + le(checkFails ? length : ~length, 2) + block
            }
            return bytes + le(crc.value, 4) + le(UInt32(plain.count), 4)
        }
        let plainPath = try Self.write(plain, "stored-plain")
        defer { unlink(plainPath) }
        let expected = Self.records(plainPath).records
        for blockSize in [1, 1_000, 65_535] {
            let compressed = member(blockSize: blockSize)
            let path = try Self.write(compressed, "stored-\(blockSize).gz")
            defer { unlink(path) }
            let read = Self.records(path)
            #expect(read.error == nil && read.records == expected, "blocks of \(blockSize)")
            for reads in [[1], [7, 4_096], [65_536], [100_003]] {
                let decoded = GzipWriterTests.decode(compressed, reads: reads) == plain
                #expect(decoded, "blocks of \(blockSize) in reads of \(reads)")
            }
        }
        let whole = member(blockSize: 65_535)
        for cut in [16, 1_000, 65_000, 65_545, 65_600, 131_000] {
            let path = try Self.write(Array(whole[..<cut]), "stored-cut.gz")
            defer { unlink(path) }
            let read = Self.records(path)
            #expect(read.error?.code == .truncatedRecord && read.error?.offset == cut, "cut at \(cut)")
            #expect(read.records.count < expected.count && Array(expected.prefix(read.records.count)) == read.records)
        }
        let bad = try Self.write(member(blockSize: 65_535, checkFails: true), "stored-bad.gz")
        defer { unlink(bad) }
        #expect(Self.records(bad).error?.message == "damaged gzip data: stored block length check failed")
    }
}
