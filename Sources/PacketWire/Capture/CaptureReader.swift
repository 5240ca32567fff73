// CaptureReader: streams records out of a pcap or pcapng file in constant memory.
//
// The file is read with large `read(2)` calls into one buffer (2 MiB by default) that is reused:
// records are handed out as views into it, valid only during the callback, and when a record
// runs past the end of the buffered bytes the unread tail moves to the front and the buffer is
// refilled. Nothing is allocated per record, and no allocation is sized from the file: a record
// or block larger than the buffer is an error (packets) or skipped without buffering (others).
// With a CaptureBufferProvider the reader never writes over delivered records: when the buffer is
// used up it continues in the next buffer the provider lends (the unread tail copied over), so a
// consumer may keep records' bytes past the callback, until the provider reuses their buffer.
// A provider that maps files (`mapsFiles`) gets a regular file's bytes mapped window by window in
// its buffers' place, each window starting at the page of the next record: nothing is copied. A
// mapped file that grows is read to its new end; one cut short reads as damage at the cut (the
// provider guards its memory against SIGBUS; the zeros to the end of the last page are told from
// a record by the file's size); one that cannot be mapped is read.
// The buffered bytes a little ahead of the next record are prefetched (`prefetchAhead`). An
// enhanced packet block naming the interface the previous one named is read in place, its
// fields loaded where they lie (`nextEnhancedPacketInPlace`); any other block, or one that fails
// a check, goes through the general block walk, which reports the damage.
//
// Malformed input never traps: every length is checked before use, records before the damage are
// delivered, and the damage is reported as a CaptureError with its byte offset. The format is
// detected from the first bytes, not the file name.

// The fuzz targets compile these sources without the package's C modules: there the prefetch
// hint below is left out.
#if canImport(CNetISRShim)
    import CNetISRShim
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Reads records from a pcap or pcapng capture.
///
/// ```swift
/// let reader = try CaptureReader(path: "trace.pcapng")
/// while try reader.read(maximum: 64, { record in print(record.originalLength) }) > 0 {}
/// ```
///
/// Thread-safety: use a reader from one thread at a time.
public final class CaptureReader {
    /// The largest captured length accepted (libpcap's and Wireshark's maximum snapshot length).
    public static let maximumCapturedLength = 262_144

    /// The smallest buffer a reader works with: room for the tail of one record and a whole next.
    public static let minimumBufferSize = 2 * (maximumCapturedLength + 4096)

    let source: any CaptureSource
    private let provider: CaptureBufferProvider?
    private var buffer: UnsafeMutableRawPointer
    private let capacity: Int
    /// A regular file mapped window by window instead of read (a provider that maps, a file of
    /// known size): its descriptor.
    private var mappedFile: Int32?
    /// The size of the mapped file, as last seen.
    private var mappedFileSize = 0
    /// Whether a window of the mapped file has been mapped yet.
    private var hasWindow = false
    private var start = 0
    private var end = 0
    private var bufferFileOffset = 0
    private var sourceDone = false
    /// Where `prefetchAhead` has prefetched up to (an offset into `buffer`).
    private var prefetched = 0
    private var failed: CaptureError?

    /// The detected format.
    public private(set) var format: CaptureFormat = .pcapng
    private var pcapLinkType = LinkType.ethernet
    private var pcapSnapLength = 0
    private var section = PcapngSection()
    /// The interface the last enhanced packet block named, when its timestamps convert by one
    /// multiplication (decimal units, no offset): the next block naming it is read in place
    /// (`nextEnhancedPacketInPlace`). Reset with every section.
    private var lastInterface: (id: Int, linkType: LinkType, nanosecondsPerUnit: UInt64)?
    /// Drops the statistics blocks of sections already ended reported (nil: none said).
    private var droppedInEarlierSections: UInt64?

    /// Frames the capturing tool says it dropped, by the pcapng interface statistics read so far
    /// (`isb_ifdrop` plus `isb_osdrop`, each interface's latest block, all sections); nil when the
    /// file has said nothing (pcap files never do). They are not in the file: no record stands
    /// for them.
    public var droppedWhileCapturing: UInt64? { Self.adding(droppedInEarlierSections, section.drops.values) }

    /// `total` plus `counts`, saturating; nil if both are empty.
    private static func adding(_ total: UInt64?, _ counts: some Collection<UInt64>) -> UInt64? {
        guard total != nil || !counts.isEmpty else { return nil }
        return counts.reduce(total ?? 0) { $0.addingReportingOverflow($1).overflow ? .max : $0 + $1 }
    }

    /// Bytes consumed so far (the offset of the next record).
    public var bytesRead: Int { bufferFileOffset + start }
    /// The file's size, when known.
    public var size: Int? { source.size }
    /// How far through its file the reader is, for progress: the file's bytes consumed (of a
    /// compressed file, its compressed bytes), of its size when known.
    public var fileProgress: (read: Int, total: Int?) { source.fileProgress ?? (bytesRead, size) }

    /// Opens a capture file; `-` reads standard input (a pipe has no `size`). A gzip-compressed
    /// file is decompressed as it is read (it has no `size` either).
    public convenience init(path: String, bufferSize: Int = 2 << 20) throws(CaptureError) {
        try self.init(source: openCaptureSource(path: path), bufferSize: bufferSize)
    }

    /// Opens a capture file (`-`: standard input; gzip-compressed or not), reading into buffers
    /// `buffers` lends (see `CaptureBufferProvider`).
    public convenience init(path: String, buffers: CaptureBufferProvider) throws(CaptureError) {
        try self.init(source: openCaptureSource(path: path), bufferSize: buffers.bufferSize, provider: buffers)
    }

    /// Reads a capture from memory.
    public convenience init(bytes: [UInt8], bufferSize: Int = 2 << 20) throws(CaptureError) {
        try self.init(source: MemoryCaptureSource(bytes), bufferSize: bufferSize)
    }

    init(source: any CaptureSource, bufferSize: Int, provider: CaptureBufferProvider? = nil) throws(CaptureError) {
        self.source = source
        self.provider = provider
        if let provider, provider.mapsFiles, provider.bufferSize >= Self.minimumBufferSize + Self.pageSize,
            let descriptor = source.mappableDescriptor, let size = source.size
        {
            // A window starts at the page holding the next record: a page less is sure to follow it.
            capacity = provider.bufferSize - Self.pageSize
            mappedFile = descriptor
            mappedFileSize = size
            // No window yet (`start == end == 0`): the first `ensure` maps one before any read.
            buffer = UnsafeMutableRawPointer(bitPattern: Self.pageSize)!
        } else if let provider {
            precondition(provider.bufferSize >= Self.minimumBufferSize, "lent capture buffers are too small")
            capacity = provider.bufferSize
            mappedFile = nil
            buffer = provider.nextBuffer(retiring: nil)
        } else {
            mappedFile = nil
            // Large enough for any record; but no record is larger than its file, so a small file
            // of known size gets a small buffer.
            let needed = max(bufferSize, Self.minimumBufferSize)
            capacity = max(4096, min(needed, (source.size ?? needed) + 16))
            buffer = .allocate(byteCount: capacity, alignment: 16)
        }
        try readFileHeader()
    }

    deinit { if provider == nil { buffer.deallocate() } }

    /// The page size mapped windows align to (file offsets of mappings are multiples of it).
    private static let pageSize = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)

    /// Reads up to `maximum` records, calling `body` with each.
    ///
    /// - Returns: how many records were delivered; 0 at the end of the file.
    /// - Throws: `CaptureError` at damage, after delivering the records before it.
    @discardableResult
    public func read(maximum: Int = 64, _ body: (CaptureRecord) throws -> Void) throws -> Int {
        if let failed { throw failed }
        var delivered = 0
        do {
            while delivered < maximum, let record = try nextRecord() {
                try body(record)
                delivered += 1
            }
        } catch let error as CaptureError {
            let error = explained(error)
            failed = error
            if delivered == 0 { throw error }
        }
        return delivered
    }

    /// The mapped file's size now (it may have grown or been cut since it was opened); nil when
    /// the file is not mapped or cannot be asked.
    private var mappedFileSizeNow: Int? {
        var status = stat()
        guard let mappedFile, fstat(mappedFile, &status) == 0 else { return nil }
        return Int(status.st_size)
    }

    /// Whether the mapped file now ends before `offset`.
    private func isCut(before offset: Int) -> Bool { (mappedFileSizeNow ?? .max) < offset }

    /// `error`, or, when a mapped file was cut short under the reader (its pages past the new end
    /// read as damage), an error that says so.
    private func explained(_ error: CaptureError) -> CaptureError {
        guard let size = mappedFileSizeNow, size < mappedFileSize else { return error }
        return CaptureError(
            .truncatedRecord, at: error.offset, "the file was cut short to \(size) bytes while being read")
    }

    // MARK: Buffer

    /// Makes `count` bytes available at `start`; false if the file ends first. The common case,
    /// bytes already there, is inlined into the record parsers; `refill` is the rest.
    @inline(__always)
    private func ensure(_ count: Int) throws(CaptureError) -> Bool {
        if end - start >= count { return true }
        return try refill(count)
    }

    /// `ensure` when the buffer holds fewer than `count` bytes: maps the next window, or moves
    /// the rest to a buffer's start and reads.
    @inline(never)
    private func refill(_ count: Int) throws(CaptureError) -> Bool {
        guard count <= capacity else { return false }
        if let mappedFile { return try map(mappedFile, count) }
        if let provider, start > 0, start + count > capacity {
            // Delivered records stay where they are: continue in the next lent buffer.
            let remaining = end - start
            let next = provider.nextBuffer(retiring: buffer)
            if remaining > 0 { next.copyMemory(from: buffer + start, byteCount: remaining) }
            buffer = next
            prefetched = 0
            bufferFileOffset += start
            start = 0
            end = remaining
        } else if provider == nil && start > 0 {
            let remaining = end - start
            if remaining > 0 { buffer.copyMemory(from: buffer + start, byteCount: remaining) }
            prefetched = 0
            bufferFileOffset += start
            start = 0
            end = remaining
        }
        while end - start < count && !sourceDone {
            let got = try source.read(into: buffer + end, count: capacity - end)
            if got == 0 { sourceDone = true } else { end += got }
        }
        return end - start >= count
    }

    /// `ensure` of a mapped file: maps the window from the page holding the next record, as much
    /// of the file as a buffer holds or as the provider lays out.
    private func map(_ descriptor: Int32, _ count: Int) throws(CaptureError) -> Bool {
        let fileOffset = bufferFileOffset + start
        if fileOffset + count > mappedFileSize {
            // A file still being written may have grown since.
            mappedFileSize = max(mappedFileSize, mappedFileSizeNow ?? 0)
            guard fileOffset + count <= mappedFileSize else { return false }
        }
        let aligned = fileOffset & ~(Self.pageSize - 1)
        let length = min(capacity + Self.pageSize, mappedFileSize - aligned)
        let minimum = fileOffset - aligned + count
        guard
            let window = provider!.nextBuffer(
                mapping: descriptor, offset: aligned, length: length, minimum: minimum,
                retiring: hasWindow ? buffer : nil)
        else {
            // A file system that cannot map the file: read it from here on.
            guard source.continueReading(at: fileOffset) else {
                throw CaptureError(.io, at: fileOffset, "cannot map or read the file from offset \(fileOffset)")
            }
            mappedFile = nil
            buffer = provider!.nextBuffer(retiring: hasWindow ? buffer : nil)
            (bufferFileOffset, start, end, prefetched) = (fileOffset, 0, 0, 0)
            return try ensure(count)
        }
        precondition(window.count >= minimum, "a mapped window too short for its record")
        buffer = UnsafeMutableRawPointer(mutating: window.baseAddress!)
        hasWindow = true
        bufferFileOffset = aligned
        start = fileOffset - aligned
        end = window.count
        prefetched = 0
        return true
    }

    /// How far ahead of the next record the buffered bytes are prefetched.
    private static let prefetchDistance = 2048

    /// Starts loading every cache line up to `prefetchDistance` bytes past the next record. The
    /// bytes were read into this buffer a while ago: a reader that shares its core with workers
    /// finds them evicted, and its every record header was a miss (83% of the record parse's
    /// samples). 1M packets, 21 interleaved pairs: 650 → 620 ms CPU (1 KiB: 679, 3 KiB: 630,
    /// 4 KiB: 679 in a shorter run).
    @inline(__always)
    private func prefetchAhead() {
        if prefetched < start { prefetched = start & ~63 }
        let horizon = min(end, start + Self.prefetchDistance)
        while prefetched < horizon {
            #if canImport(CNetISRShim)
                netisr_prefetch(buffer + prefetched)
            #endif
            prefetched += 64
        }
    }

    /// Skips `count` bytes, reading through them without buffering them all.
    private func skip(_ count: Int) throws(CaptureError) -> Bool {
        var left = count
        while left > 0 {
            if end - start == 0 {
                guard try ensure(1) else { return false }
            }
            let step = min(left, end - start)
            start += step
            left -= step
        }
        return true
    }

    private var view: ByteView { ByteView(UnsafeRawBufferPointer(start: buffer + start, count: end - start)) }

    // MARK: Formats

    private func readFileHeader() throws(CaptureError) {
        guard try ensure(4) else {
            throw CaptureError(.truncatedHeader, at: 0, "the file is too short to be a capture (\(end) bytes)")
        }
        let magic = view.u32le(0)!
        switch magic {
        case 0xA1B2_C3D4, 0xA1B2_3C4D, 0xD4C3_B2A1, 0x4D3C_B2A1:
            let bigEndian = magic == 0xD4C3_B2A1 || magic == 0x4D3C_B2A1
            let nanosecond = magic == 0xA1B2_3C4D || magic == 0x4D3C_B2A1
            format = .pcap(bigEndian: bigEndian, nanosecond: nanosecond)
            guard try ensure(24) else {
                throw CaptureError(.truncatedHeader, at: 0, "the pcap file header is cut short")
            }
            pcapSnapLength = Int(view.u32(16, bigEndian: bigEndian)!)
            pcapLinkType = LinkType(rawValue: view.u32(20, bigEndian: bigEndian)! & 0x03FF_FFFF)
            start += 24
        case 0x0A0D_0D0A:
            format = .pcapng
        default:
            throw CaptureError(
                .unknownFormat, at: 0,
                "not a pcap or pcapng file (magic 0x\(String(magic, radix: 16)))")
        }
    }

    @inline(__always)
    private func nextRecord() throws(CaptureError) -> CaptureRecord? {
        switch format {
        case .pcap(let bigEndian, let nanosecond): try nextPcapRecord(bigEndian: bigEndian, nanosecond: nanosecond)
        case .pcapng: try nextPcapngRecord()
        }
    }

    @inline(__always)
    private func nextPcapRecord(bigEndian: Bool, nanosecond: Bool) throws(CaptureError) -> CaptureRecord? {
        let offset = bytesRead
        guard try ensure(16) else {
            if end - start == 0 { return nil }
            throw CaptureError(.truncatedRecord, at: offset, "the file ends inside a record header")
        }
        // `ensure(16)` made the 16 header bytes available at `start`.
        let header = UnsafeRawPointer(buffer + start)
        @inline(__always) func field(_ offset: Int) -> UInt32 { Self.u32(header, offset, bigEndian: bigEndian) }
        let seconds = UInt64(field(0))
        let fraction = UInt64(field(4))
        let captured = Int(field(8))
        let original = Int(field(12))
        if original == 0 && captured == 0 && mappedFile != nil && seconds | fraction == 0 && isCut(before: offset + 16)
        {
            // A mapped file cut short reads as zeros to the end of its last page.
            throw CaptureError(.truncatedRecord, at: offset, "the file ends inside a record header")
        }
        guard captured <= Self.maximumCapturedLength else {
            throw CaptureError(
                .recordTooLarge, at: offset,
                "a record's captured length \(captured) is above the maximum \(Self.maximumCapturedLength)")
        }
        guard try ensure(16 + captured) else {
            throw CaptureError(.truncatedRecord, at: offset, "the file ends inside a \(captured)-byte record")
        }
        let bytes = UnsafeRawBufferPointer(start: buffer + start + 16, count: captured)
        start += 16 + captured
        prefetchAhead()
        let timestamp = seconds &* 1_000_000_000 &+ (nanosecond ? fraction : fraction &* 1_000)
        return CaptureRecord(
            bytes: bytes, originalLength: original, timestamp: timestamp, linkType: pcapLinkType, interfaceID: 0,
            fileOffset: offset)
    }

    /// A 32-bit field of a record or block header in the buffer, read in place (both record
    /// readers' common case, inlined; `ByteView` checks bounds the caller has already checked).
    @inline(__always)
    private static func u32(_ base: UnsafeRawPointer, _ offset: Int, bigEndian: Bool) -> UInt32 {
        let raw = base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        return bigEndian ? UInt32(bigEndian: raw) : UInt32(littleEndian: raw)
    }

    /// The next pcapng record: in place when it is an enhanced packet block of `lastInterface`,
    /// whole within the buffer and sound (most blocks of most files), else by the general walk
    /// below, which also reports any damage. Both give the same record for such a block.
    @inline(__always)
    private func nextPcapngRecord() throws(CaptureError) -> CaptureRecord? {
        if let record = nextEnhancedPacketInPlace() { return record }
        return try nextPcapngBlock()
    }

    /// An enhanced packet block of `lastInterface` read where it lies, or nil (nothing consumed)
    /// if the next block is anything else: another type or interface, not all in the buffer,
    /// or failing any of the general walk's checks.
    @inline(__always)
    private func nextEnhancedPacketInPlace() -> CaptureRecord? {
        guard let interface = lastInterface, end - start >= 32 else { return nil }
        let block = UnsafeRawPointer(buffer + start)
        let bigEndian = section.bigEndian
        @inline(__always) func field(_ offset: Int) -> UInt32 { Self.u32(block, offset, bigEndian: bigEndian) }
        let length = Int(field(4))
        guard field(0) == 6, length % 4 == 0, length >= 32, length <= end - start,
            Int(field(8)) == interface.id
        else { return nil }
        let captured = Int(field(20))
        guard captured <= Self.maximumCapturedLength, 28 + captured <= length - 4, Int(field(length - 4)) == length
        else { return nil }
        let (timestamp, overflow) = (UInt64(field(12)) << 32 | UInt64(field(16))).multipliedReportingOverflow(
            by: interface.nanosecondsPerUnit)
        guard !overflow, timestamp <= UInt64(Int64.max) else { return nil }
        let offset = bytesRead
        start += length
        prefetchAhead()
        return CaptureRecord(
            bytes: UnsafeRawBufferPointer(start: block + 28, count: captured), originalLength: Int(field(24)),
            timestamp: timestamp, linkType: interface.linkType, interfaceID: interface.id, fileOffset: offset)
    }

    private func nextPcapngBlock() throws(CaptureError) -> CaptureRecord? {
        while true {
            let offset = bytesRead
            guard try ensure(8) else {
                if end - start == 0 { return nil }
                throw CaptureError(.truncatedRecord, at: offset, "the file ends inside a block header")
            }
            let rawType = view.u32le(0)!
            if rawType == PcapngSection.headerType {
                try readSectionHeader(at: offset)
                continue
            }
            guard section.isOpen else {
                throw CaptureError(.unexpectedBlock, at: offset, "a block before any section header")
            }
            let bigEndian = section.bigEndian
            let type = view.u32(0, bigEndian: bigEndian)!
            let length = Int(view.u32(4, bigEndian: bigEndian)!)
            guard length >= 12, length % 4 == 0 else {
                throw CaptureError(
                    .badBlockLength, at: offset, "block length \(length) is not a multiple of 4 of at least 12")
            }
            // Interface statistics: read when whole and sound, else passed over as before.
            if type == 5, length <= capacity, try ensure(length),
                view.u32(length - 4, bigEndian: bigEndian) == UInt32(length)
            {
                section.addStatistics(view.prefix(length))
                start += length
                continue
            }
            let isPacket = type == 6 || type == 3 || type == 2 || type == 1
            if !isPacket {
                guard try skip(length) else {
                    throw CaptureError(.truncatedRecord, at: offset, "the file ends inside a \(length)-byte block")
                }
                continue
            }
            guard length <= capacity else {
                throw CaptureError(
                    .recordTooLarge, at: offset, "a \(length)-byte block is larger than any packet may be")
            }
            guard try ensure(length) else {
                throw CaptureError(.truncatedRecord, at: offset, "the file ends inside a \(length)-byte block")
            }
            let block = view.prefix(length)
            guard block.u32(length - 4, bigEndian: bigEndian) == UInt32(length) else {
                throw CaptureError(.badBlockLength, at: offset, "block length \(length) differs from its trailer")
            }
            if type == 1 {
                try section.addInterface(block, at: offset)
                start += length
                continue
            }
            let record = try section.packet(type: type, block: block, at: offset)
            start += length
            prefetchAhead()
            if type == 6, let record { lastInterface = section.inPlaceReading(record.interfaceID) }
            if let record { return record }
        }
    }

    private func readSectionHeader(at offset: Int) throws(CaptureError) {
        guard try ensure(12) else {
            throw CaptureError(.truncatedHeader, at: offset, "the file ends inside a section header")
        }
        let magic = view.u32le(8)!
        let bigEndian: Bool
        switch magic {
        case 0x1A2B_3C4D: bigEndian = false
        case 0x4D3C_2B1A: bigEndian = true
        default:
            throw CaptureError(
                .badByteOrderMagic, at: offset, "unknown section byte-order magic 0x\(String(magic, radix: 16))")
        }
        let length = Int(view.u32(4, bigEndian: bigEndian)!)
        guard length >= 28, length % 4 == 0 else {
            throw CaptureError(.badBlockLength, at: offset, "section header length \(length) is invalid")
        }
        guard length <= capacity else {
            throw CaptureError(.badBlockLength, at: offset, "section header length \(length) is implausibly large")
        }
        guard try ensure(length) else {
            throw CaptureError(.truncatedHeader, at: offset, "the file ends inside a section header")
        }
        guard view.u32(length - 4, bigEndian: bigEndian) == UInt32(length) else {
            throw CaptureError(.badBlockLength, at: offset, "section header length differs from its trailer")
        }
        droppedInEarlierSections = Self.adding(droppedInEarlierSections, section.drops.values)
        section = PcapngSection(bigEndian: bigEndian)
        lastInterface = nil
        start += length
    }
}
