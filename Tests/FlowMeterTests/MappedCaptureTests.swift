// The replay's arena maps regular files instead of reading them (PacketArena, CaptureReader's
// mapped windows): records come out the same as read, the arena's chunks can be read into again
// after a file was mapped there, a file that grows while open is read to its new end, and a file
// cut short while mapped is reported as damage at the cut instead of killing the process with
// SIGBUS (CNetISRShim's mapping guard), while a SIGBUS anywhere else still ends the process.

import CNetISRShim
import PacketWire
import TestSupport
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct MappedCaptureTests {
    /// A record's bytes and original length.
    struct Seen: Equatable {
        var bytes: [UInt8]
        var originalLength: Int
        var timestamp: UInt64
    }

    /// Every record of `path`, read through `arena` if given (else a reader of its own), with the
    /// error that ended the file, if any.
    static func records(_ path: String, arena: PacketArena? = nil) throws -> ([Seen], CaptureError?) {
        let reader = try arena.map { try CaptureReader(path: path, buffers: $0) } ?? CaptureReader(path: path)
        var seen: [Seen] = []
        do {
            while try reader.read(
                maximum: 256,
                {
                    seen.append(
                        Seen(bytes: Array($0.bytes), originalLength: $0.originalLength, timestamp: $0.timestamp))
                }) > 0
            {}
        } catch let error as CaptureError {
            return (seen, error)
        }
        return (seen, nil)
    }

    static func write(_ path: String, format: CaptureWriter.Format, frames: Range<Int>) throws {
        let writer = try CaptureWriter(path: path, format: format)
        for index in frames {
            let frame = (0..<(60 + index * 7_919 % 1_400)).map { UInt8(truncatingIfNeeded: index &* 31 &+ $0) }
            try frame.withUnsafeBytes { try writer.write($0, timestamp: UInt64(index) * 1_000, linkType: .ethernet) }
        }
        try writer.close()
    }

    /// Writes (`w`) or appends (`a`) `bytes` to `path`.
    static func store(_ bytes: ArraySlice<UInt8>, at path: String, mode: String) throws {
        let file = try #require(fopen(path, mode))
        defer { fclose(file) }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        #expect(written == bytes.count)
    }

    @Test(arguments: [CaptureWriter.Format.pcap(nanosecond: false), .pcapng(nanosecond: true)])
    func mappedFilesReadAsReadFilesAndChunksServeReadingAgain(format: CaptureWriter.Format) throws {
        let base = "/tmp/netisr-mapped-\(getpid())-\(format == .pcap(nanosecond: false) ? "pcap" : "pcapng")"
        defer {
            unlink(base)
            unlink(base + ".gz")
        }
        // Two and a half chunks of frames (≈ 776 bytes each on average, with their headers) for
        // an arena of two: windows over every chunk and round again, records across window ends.
        let frames = 5 * PacketArena.chunkSize / 2 / 760
        try Self.write(base, format: format, frames: 0..<frames)
        try Self.write(base + ".gz", format: format, frames: 0..<frames)
        let arena = PacketArena(chunks: 2, workstreams: 1)
        #expect(arena.mapsFiles)
        let (read, readError) = try Self.records(base)
        let (mapped, mappedError) = try Self.records(base, arena: arena)
        #expect(readError == nil && mappedError == nil)
        #expect(read.count == frames)
        let same = read == mapped
        #expect(same, "a mapped file gave other records than reading it")
        // The gzip file is read into the chunks the plain file was mapped over: writable again.
        let (unzipped, unzipError) = try Self.records(base + ".gz", arena: arena)
        let sameAgain = unzipped == read
        #expect(unzipError == nil && sameAgain)
        // And the plain file mapped once more, over chunks that were read into.
        let (again, _) = try Self.records(base, arena: arena)
        let sameThird = again == read
        #expect(sameThird)
    }

    /// A mapped record lies at its file offset's place within a 2 MiB block: the file's whole
    /// 2 MiB blocks sit at 2 MiB-aligned addresses, where huge pages of the page cache map whole.
    @Test func mappedRecordsKeepTheirPlaceWithinTwoMebibyteBlocks() throws {
        let path = "/tmp/netisr-mapped-place-\(getpid()).pcap"
        defer { unlink(path) }
        try Self.write(path, format: .pcap(nanosecond: false), frames: 0..<15_000)
        let arena = PacketArena(workstreams: 1)
        #expect(arena.mapsFiles)
        let reader = try CaptureReader(path: path, buffers: arena)
        var dataOffset = 24  // the pcap file header
        var records = 0
        var misplaced = 0
        while try reader.read(
            maximum: 256,
            { record in
                dataOffset += 16
                let address = Int(bitPattern: record.bytes.baseAddress)
                if address % PacketArena.hugePage != dataOffset % PacketArena.hugePage { misplaced += 1 }
                dataOffset += record.bytes.count
                records += 1
            }) > 0
        {}
        #expect(records == 15_000)
        #expect(misplaced == 0)
    }

    /// Where record `index` ends (-1: where the first starts) in a file of `records` of `size`
    /// bytes: file or section and interface headers, then pcap's 16-byte record headers or
    /// pcapng's enhanced packet blocks of 32 bytes around the data padded to 4.
    static func end(of index: Int, in records: [Seen], format: CaptureWriter.Format, size: Int) -> Int {
        func recordSize(_ record: Seen) -> Int {
            if case .pcap = format { return 16 + record.bytes.count }
            return 32 + (record.bytes.count + 3) & ~3
        }
        let headers = size - records.reduce(0) { $0 + recordSize($1) }
        return headers + records.prefix(index + 1).reduce(0) { $0 + recordSize($1) }
    }

    @Test func aMappedFileThatGrowsIsReadToItsNewEnd() throws {
        let whole = "/tmp/netisr-mapped-grow-\(getpid())-whole.pcap"
        let growing = "/tmp/netisr-mapped-grow-\(getpid()).pcap"
        defer {
            unlink(whole)
            unlink(growing)
        }
        try Self.write(whole, format: .pcap(nanosecond: false), frames: 0..<3_000)
        let bytes = try #require(SharedFixtures.bytes(whole))
        let half = bytes.count / 2
        try Self.store(bytes[..<half], at: growing, mode: "w")
        let arena = PacketArena(workstreams: 1)
        let reader = try CaptureReader(path: growing, buffers: arena)
        var count = 0
        // Read what is there (the last record of the first half is cut: it waits)…
        _ = try reader.read(maximum: 100) { _ in count += 1 }
        try Self.store(bytes[half...], at: growing, mode: "a")
        while try reader.read(maximum: 256, { _ in count += 1 }) > 0 {}
        #expect(count == 3_000)
    }

    /// Cut at a page boundary, the next page faults (SIGBUS, filled in by the guard); cut inside
    /// a page, the rest of that page reads as zeros: both are damage at the cut.
    @Test(arguments: [
        (CaptureWriter.Format.pcap(nanosecond: true), 307_200), (.pcap(nanosecond: true), 300_001),
        (.pcapng(nanosecond: false), 307_200), (.pcapng(nanosecond: false), 300_001),
    ])
    func aFileCutShortWhileMappedIsDamageAtTheCut(format: CaptureWriter.Format, cut: Int) throws {
        let name = format == .pcap(nanosecond: true) ? "pcap" : "pcapng"
        let path = "/tmp/netisr-mapped-cut-\(getpid())-\(cut)-\(name)"
        defer { unlink(path) }
        try Self.write(path, format: format, frames: 0..<4_000)
        let (all, _) = try Self.records(path)
        let size = try #require(SharedFixtures.bytes(path)).count
        func end(_ index: Int) -> Int { Self.end(of: index, in: all, format: format, size: size) }
        let arena = PacketArena(workstreams: 1)
        #expect(arena.mapsFiles)
        let reader = try CaptureReader(path: path, buffers: arena)
        var seen: [Seen] = []
        let keep = { (record: CaptureRecord) in
            seen.append(
                Seen(bytes: Array(record.bytes), originalLength: record.originalLength, timestamp: record.timestamp))
        }
        _ = try reader.read(maximum: 50, keep)
        // The first window (up to 8 MiB) is mapped, populated; cut the file inside it.
        #expect(truncate(path, off_t(cut)) == 0)
        let faultsBefore = netisr_guarded_faults()
        var failure: CaptureError?
        do {
            while try reader.read(maximum: 256, keep) > 0 {}
        } catch let error as CaptureError {
            failure = error
        }
        if cut % 4_096 == 0 { #expect(netisr_guarded_faults() > faultsBefore) }
        let error = try #require(failure)
        #expect(error.code == .truncatedRecord && error.message.contains("cut short to \(cut) bytes"))
        // Every record wholly before the cut came out intact; the next either failed at its start
        // or came out (its header before the cut, its data not) and the failure is after it.
        let first = all.indices.first { end($0) > cut } ?? all.count
        let failedAtStart = seen.count == first && error.offset == end(first - 1)
        let failedAfter = seen.count == first + 1 && error.offset == end(first)
        #expect(
            failedAtStart || failedAfter, "\(seen.count) records, the cut's at \(first); failure at \(error.offset)")
        let intact = zip(seen.prefix(first), all).allSatisfy { $0 == $1 }
        #expect(intact)
    }
}

/// The guard keeps only its own: a SIGBUS anywhere else still ends the process, as it would
/// without the guard (the handler passes it to the one installed before it, or the default).
@Suite struct MappingGuardTests {
    @Test func aBusErrorOutsideEveryGuardedRangeStillEndsTheProcess() async {
        await #expect(processExitsWith: .signal(SIGBUS)) {
            let arena = PacketArena(workstreams: 1)
            precondition(arena.mapsFiles)
            let path = "/tmp/netisr-guard-\(getpid())"
            let descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
            unlink(path)
            precondition(ftruncate(descriptor, 8_192) == 0)
            let other = mmap(nil, 8_192, PROT_READ, MAP_SHARED, descriptor, 0)!
            precondition(ftruncate(descriptor, 0) == 0)
            // A page of a file cut short, outside the arena: this must raise SIGBUS and end here.
            let byte = UnsafeRawPointer(other).load(fromByteOffset: 4_096, as: UInt8.self)
            print("read \(byte) past the end of a file and lived", arena.mapsFiles)
        }
    }
}
