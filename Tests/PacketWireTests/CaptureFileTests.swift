// Reading and writing pcap and pcapng: formats, byte orders, timestamp scales, block kinds, and
// a typed error with its byte offset for every kind of damage.

import PacketWire
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CaptureFileTests {
    static let frames: [[UInt8]] = [
        Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp())),
        Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 17, Frame.udp())),
        Frame.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28)),
    ]

    func written(_ format: CaptureWriter.Format, snapLength: Int = 262_144) throws -> [UInt8] {
        let writer = CaptureWriter(inMemory: format, snapLength: snapLength)
        for (index, frame) in Self.frames.enumerated() {
            try frame.withUnsafeBytes {
                try writer.write(
                    $0, originalLength: frame.count + 4, timestamp: 1_700_000_000_123_456_789 + UInt64(index),
                    linkType: .ethernet)
            }
        }
        try writer.close()
        return writer.memory
    }

    @Test(arguments: [
        CaptureWriter.Format.pcap(nanosecond: false), .pcap(nanosecond: true), .pcapng(nanosecond: false),
        .pcapng(nanosecond: true),
    ])
    func writtenFilesReadBack(format: CaptureWriter.Format) throws {
        let bytes = try written(format)
        let (records, error) = readAll(bytes)
        #expect(error == nil)
        #expect(records.map(\.0) == Self.frames)
        #expect(records.map(\.1) == Self.frames.map { $0.count + 4 })
        let nanosecond = format == .pcap(nanosecond: true) || format == .pcapng(nanosecond: true)
        #expect(records.first?.2 == (nanosecond ? 1_700_000_000_123_456_789 : 1_700_000_000_123_456_000))
        let reader = try CaptureReader(bytes: bytes)
        switch format {
        case .pcap(let nanosecond): #expect(reader.format == .pcap(bigEndian: false, nanosecond: nanosecond))
        case .pcapng: #expect(reader.format == .pcapng)
        }
    }

    /// Interface statistics blocks at the end of a pcapng file: one per interface, with the
    /// counts given; readers skip them (every frame still reads back); pcap files get none.
    @Test func statisticsEndAPcapngFileOnePerInterface() throws {
        let writer = CaptureWriter(inMemory: .pcapng(nanosecond: true))
        for (index, linkType) in [LinkType.ethernet, .raw, .ethernet].enumerated() {
            let frame = Self.frames[0]
            try frame.withUnsafeBytes { try writer.write($0, timestamp: UInt64(index), linkType: linkType) }
        }
        try writer.writeStatistics(received: 1_000, dropped: 7, delivered: 993, timestamp: 5_000_000_001)
        try writer.close()
        let bytes = writer.memory
        // Walk the blocks: (type, body) pairs.
        var blocks: [(type: UInt32, body: ArraySlice<UInt8>)] = []
        var offset = 0
        func u32(_ at: Int) -> UInt32 { bytes[at..<(at + 4)].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        func u64(_ at: Int) -> UInt64 { bytes[at..<(at + 8)].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        while offset + 12 <= bytes.count {
            let length = Int(u32(offset + 4))
            #expect(length >= 12 && u32(offset + length - 4) == UInt32(length))
            blocks.append((u32(offset), bytes[(offset + 8)..<(offset + length - 4)]))
            offset += length
        }
        #expect(offset == bytes.count)
        #expect(blocks.map(\.type) == [0x0A0D_0D0A, 1, 6, 1, 6, 6, 5, 5])
        for (id, block) in blocks.filter({ $0.type == 5 }).enumerated() {
            let start = block.body.startIndex
            #expect(u32(start) == UInt32(id))
            #expect(UInt64(u32(start + 4)) << 32 | UInt64(u32(start + 8)) == 5_000_000_001)
            // Options: ifrecv (4), ifdrop (5), usrdeliv (8), each 8 bytes, then the end.
            let options = (0..<3).map { start + 12 + $0 * 12 }
            #expect(options.map { u32($0) } == [4 | 8 << 16, 5 | 8 << 16, 8 | 8 << 16])
            #expect(options.map { u64($0 + 4) } == [1_000, 7, 993])
            #expect(u32(start + 48) == 0 && block.body.count == 52)
        }
        #expect(readAll(bytes).records.count == 3 && readAll(bytes).error == nil)
        let pcap = CaptureWriter(inMemory: .pcap(nanosecond: false))
        try Self.frames[0].withUnsafeBytes { try pcap.write($0, timestamp: 0, linkType: .ethernet) }
        try pcap.flush()
        let before = pcap.memory
        try pcap.writeStatistics(received: 1, dropped: 0, delivered: 1, timestamp: 0)
        try pcap.flush()
        #expect(pcap.memory == before && before.count == 24 + 16 + Self.frames[0].count)
    }

    @Test func snapLengthCutsWhatIsWritten() throws {
        let (records, _) = readAll(try written(.pcap(nanosecond: false), snapLength: 20))
        #expect(records.allSatisfy { $0.0.count == 20 })
        #expect(records.map(\.1) == Self.frames.map { $0.count + 4 })
    }

    @Test func bigEndianPcapIsRead() {
        let frame = Self.frames[0]
        let file =
            Frame.be32(0xA1B2_C3D4) + Frame.be16(2) + Frame.be16(4) + Frame.be32(0) + Frame.be32(0) + Frame.be32(65_535)
            + Frame.be32(1) + Frame.be32(10) + Frame.be32(500) + Frame.be32(UInt32(frame.count))
            + Frame.be32(UInt32(frame.count)) + frame
        let (records, error) = readAll(file)
        #expect(error == nil)
        #expect(records.count == 1 && records[0].0 == frame && records[0].2 == 10_000_500_000)
    }

    /// A pcapng block in the given byte order.
    func block(_ type: UInt32, _ body: [UInt8], bigEndian: Bool) -> [UInt8] {
        let padded = body + [UInt8](repeating: 0, count: (4 - body.count % 4) % 4)
        let length = UInt32(12 + padded.count)
        let u32 = bigEndian ? Frame.be32 : Frame.le32
        return u32(type) + u32(length) + padded + u32(length)
    }

    func sectionHeader(bigEndian: Bool) -> [UInt8] {
        let u16 = bigEndian ? Frame.be16 : Frame.le16
        let u32 = bigEndian ? Frame.be32 : Frame.le32
        return block(
            0x0A0D_0D0A, u32(0x1A2B_3C4D) + u16(1) + u16(0) + [UInt8](repeating: 0xFF, count: 8), bigEndian: bigEndian)
    }

    func interface(_ linkType: UInt16, snap: UInt32 = 0, options: [UInt8] = [], bigEndian: Bool) -> [UInt8] {
        let u16 = bigEndian ? Frame.be16 : Frame.le16
        let u32 = bigEndian ? Frame.be32 : Frame.le32
        return block(1, u16(linkType) + u16(0) + u32(snap) + options, bigEndian: bigEndian)
    }

    func enhanced(_ interface: UInt32, timestamp: UInt64, _ data: [UInt8], bigEndian: Bool) -> [UInt8] {
        let u32 = bigEndian ? Frame.be32 : Frame.le32
        return block(
            6,
            u32(interface) + u32(UInt32(timestamp >> 32)) + u32(UInt32(timestamp & 0xFFFF_FFFF))
                + u32(UInt32(data.count)) + u32(UInt32(data.count)) + data, bigEndian: bigEndian)
    }

    @Test func pcapngSectionsInBothByteOrdersInterfacesAndTimestampScales() {
        let frame = Self.frames[0]
        let raw = Frame.ipv4(protocol: 17, Frame.udp())
        let le16 = Frame.le16
        // Section 1 (little-endian): Ethernet with 2^-10 s units and +100 s offset; raw IPv4 in µs.
        let binaryResolution = le16(9) + le16(1) + [0x80 | 10, 0, 0, 0]
        let offset = le16(14) + le16(8) + Frame.le32(100) + Frame.le32(0)
        var file = sectionHeader(bigEndian: false)
        file += interface(1, options: binaryResolution + offset + le16(0) + le16(0), bigEndian: false)
        file += interface(228, bigEndian: false)
        file += block(0x0000_0BAD, [1, 2, 3], bigEndian: false)  // unknown block: skipped
        file += block(5, [UInt8](repeating: 0, count: 20), bigEndian: false)  // statistics: skipped
        file += enhanced(0, timestamp: 3 << 10 | 512, frame, bigEndian: false)
        file += enhanced(1, timestamp: 7_000_001, raw, bigEndian: false)
        // Simple packet block: interface 0, length implied.
        file += block(3, Frame.le32(UInt32(frame.count)) + frame, bigEndian: false)
        // Obsolete packet block (type 2): 16-bit interface id and drop count.
        file += block(
            2,
            le16(1) + le16(0) + Frame.le32(0) + Frame.le32(42) + Frame.le32(UInt32(raw.count))
                + Frame.le32(UInt32(raw.count)) + raw,
            bigEndian: false)
        // Section 2 (big-endian), nanosecond Ethernet interface.
        file += sectionHeader(bigEndian: true)
        file += interface(1, options: Frame.be16(9) + Frame.be16(1) + [9, 0, 0, 0], bigEndian: true)
        file += enhanced(0, timestamp: 5, frame, bigEndian: true)
        let (records, error) = readAll(file)
        #expect(error == nil)
        #expect(records.count == 5)
        guard records.count == 5 else { return }
        #expect(records[0].2 == 103_500_000_000)  // 3.5 s at 2^-10 units, plus 100 s
        #expect(records[0].3 == .ethernet)
        #expect(records[1].2 == 7_000_001_000 && records[1].3 == .ipv4 && records[1].0 == raw)
        #expect(records[2].0 == frame && records[2].2 == 0)
        #expect(records[3].3 == .ipv4 && records[3].2 == 42_000)
        #expect(records[4].2 == 5 && records[4].0 == frame)
    }

    // MARK: Damage

    @Test func damageGivesATypedErrorWithItsOffsetAfterTheRecordsBeforeIt() throws {
        let good = try written(.pcap(nanosecond: false))
        let firstRecordEnd = 24 + 16 + Self.frames[0].count
        // Truncated record: the file ends inside the second record.
        let truncated = readAll(Array(good[0..<(firstRecordEnd + 20)]))
        #expect(truncated.records.count == 1)
        #expect(truncated.error?.code == .truncatedRecord)
        #expect(truncated.error?.offset == firstRecordEnd)
        // Ends inside a record header.
        #expect(readAll(Array(good[0..<(firstRecordEnd + 7)])).error?.code == .truncatedRecord)
        // Captured length above 262,144.
        var huge = good
        huge.replaceSubrange((firstRecordEnd + 8)..<(firstRecordEnd + 12), with: Frame.le32(300_000))
        let tooLarge = readAll(huge)
        #expect(tooLarge.records.count == 1 && tooLarge.error?.code == .recordTooLarge)
        #expect(tooLarge.error?.offset == firstRecordEnd)
        // Bad magic and truncated headers.
        #expect(readAll([1, 2, 3, 4, 5, 6, 7, 8]).error?.code == .unknownFormat)
        #expect(readAll([0xD4, 0xC3]).error?.code == .truncatedHeader)
        #expect(readAll(Array(good[0..<10])).error?.code == .truncatedHeader)
        #expect(readAll([]).error?.code == .truncatedHeader)
    }

    @Test func pcapngDamage() {
        let frame = Self.frames[0]
        let head = sectionHeader(bigEndian: false) + interface(1, bigEndian: false)
        let packet = enhanced(0, timestamp: 1, frame, bigEndian: false)
        // Length not a multiple of 4.
        var odd = head + packet
        odd.replaceSubrange((head.count + 4)..<(head.count + 8), with: Frame.le32(UInt32(packet.count - 1)))
        let oddResult = readAll(odd)
        #expect(oddResult.error?.code == .badBlockLength && oddResult.error?.offset == head.count)
        // Trailer differs.
        var trailer = head + packet + packet
        trailer[trailer.count - 1] = 0x7F
        let trailerResult = readAll(trailer)
        #expect(trailerResult.records.count == 1 && trailerResult.error?.code == .badBlockLength)
        // Packet naming an interface that was never described.
        let unknown = readAll(sectionHeader(bigEndian: false) + enhanced(3, timestamp: 1, frame, bigEndian: false))
        #expect(unknown.error?.code == .unknownInterface)
        // Truncated block.
        let cut = readAll(Array((head + packet)[0..<(head.count + 20)]))
        #expect(cut.error?.code == .truncatedRecord && cut.error?.offset == head.count)
        // Bad byte-order magic in a later section header.
        var badSection = sectionHeader(bigEndian: false)
        badSection[8] = 0x99
        #expect(readAll(head + packet + badSection).error?.code == .badByteOrderMagic)
        // A packet whose data runs past its block.
        var overrun = head + packet
        overrun.replaceSubrange((head.count + 20)..<(head.count + 24), with: Frame.le32(UInt32(frame.count + 64)))
        #expect(readAll(overrun).error?.code == .badBlockLength)
        // An oversized block length is refused without allocating it.
        var enormous = head + packet
        enormous.replaceSubrange((head.count + 4)..<(head.count + 8), with: Frame.le32(0xFFFF_FFF0))
        #expect(readAll(enormous).error?.code == .recordTooLarge)
    }

    /// Lends a fresh buffer each time and never reuses one, remembering what was retired. With
    /// `failsToMap`, it says it maps files but fails to (as a file system that cannot map would).
    final class LendingProvider: CaptureBufferProvider {
        let bufferSize = CaptureReader.minimumBufferSize + 4096
        var lent: [UnsafeMutableRawPointer] = []
        var retired: [UnsafeMutableRawPointer] = []
        let failsToMap: Bool
        var mappingsTried = 0

        init(failsToMap: Bool = false) { self.failsToMap = failsToMap }

        var mapsFiles: Bool { failsToMap }

        func nextBuffer(
            mapping descriptor: Int32, offset: Int, length: Int, minimum: Int, retiring: UnsafeMutableRawPointer?
        ) -> UnsafeRawBufferPointer? {
            mappingsTried += 1
            return nil
        }

        func nextBuffer(retiring: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer {
            if let retiring { retired.append(retiring) }
            lent.append(.allocate(byteCount: bufferSize, alignment: 16))
            return lent.last!
        }

        deinit { for buffer in lent { buffer.deallocate() } }
    }

    /// With lent buffers, records stay where they were read: every one still holds its bytes
    /// after the whole file has been read, across many buffers, empty records included. A
    /// provider that fails to map the file leaves it read instead, from the start.
    @Test(arguments: [CaptureWriter.Format.pcap(nanosecond: false), .pcapng(nanosecond: true)], [false, true])
    func lentBuffersKeepEveryRecordWhereItWasRead(format: CaptureWriter.Format, failsToMap: Bool) throws {
        let name = "\(format == .pcap(nanosecond: false) ? "pcap" : "pcapng")-\(failsToMap)"
        let path = "/tmp/netisr-lent-\(getpid())-\(name)"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: format)
        func frame(_ index: Int) -> [UInt8] {
            (0..<(index * 7_919 % 1_500)).map { UInt8(truncatingIfNeeded: index &+ $0) }
        }
        let frames = 4_000
        for index in 0..<frames {
            try frame(index).withUnsafeBytes { try writer.write($0, timestamp: UInt64(index), linkType: .ethernet) }
        }
        try writer.close()
        let provider = LendingProvider(failsToMap: failsToMap)
        var kept: [UnsafeRawBufferPointer] = []
        do {
            let reader = try CaptureReader(path: path, buffers: provider)
            while try reader.read(maximum: 256, { kept.append($0.bytes) }) > 0 {}
        }
        #expect(kept.count == frames)
        #expect(provider.lent.count > 4 && provider.retired == Array(provider.lent.dropLast()))
        #expect(provider.mappingsTried == (failsToMap ? 1 : 0))
        let intact = kept.enumerated().allSatisfy { index, bytes in Array(bytes) == frame(index) }
        #expect(intact)
    }

    @Test func largeFilesStreamThroughTheBoundedBuffer() throws {
        // 40,000 frames ≈ 3.6 MB: more than the reader's buffer, so it must refill many times.
        let writer = CaptureWriter(inMemory: .pcapng(nanosecond: true))
        let frame = Frame.ethernet(
            type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp(payload: [UInt8](repeating: 7, count: 40))))
        for index in 0..<40_000 {
            try frame.withUnsafeBytes { try writer.write($0, timestamp: UInt64(index), linkType: .ethernet) }
        }
        try writer.close()
        let reader = try CaptureReader(bytes: writer.memory)
        var count = 0
        var last: UInt64 = 0
        while try reader.read(
            maximum: 1_000,
            { record in
                count += 1
                last = record.timestamp
            }) > 0
        {}
        #expect(count == 40_000 && last == 39_999)
        #expect(reader.bytesRead == writer.memory.count)
    }

    /// A plain file goes to disk in whole 2 MiB blocks at 2 MiB offsets (what the page cache can
    /// keep as huge pages), the rest when it is closed; it reads back whole.
    @Test(arguments: [CaptureWriter.Format.pcap(nanosecond: false), .pcapng(nanosecond: true)])
    func plainFilesAreWrittenInTwoMebibyteBlocks(format: CaptureWriter.Format) throws {
        let path = "/tmp/netisr-blocks-\(getpid())-\(format == .pcap(nanosecond: false) ? "pcap" : "pcapng")"
        defer { unlink(path) }
        func sizeOnDisk() -> Int {
            var status = stat()
            return stat(path, &status) == 0 ? Int(status.st_size) : -1
        }
        let writer = try CaptureWriter(path: path, format: format)
        let frame = [UInt8](repeating: 0x5A, count: 1_377)
        var sizes: Set<Int> = []
        for index in 0..<4_000 {
            try frame.withUnsafeBytes { try writer.write($0, timestamp: UInt64(index), linkType: .ethernet) }
            sizes.insert(sizeOnDisk())
        }
        // About 5.6 MB written: on disk so far, nothing, then 2 MiB, then 4 MiB.
        #expect(sizes == [0, 2 << 20, 4 << 20])
        try writer.close()
        let (records, error) = readAll(try #require(SharedFixtures.bytes(path)))
        #expect(error == nil && records.count == 4_000 && records.allSatisfy { $0.0 == frame })
    }
}
