// CaptureWriter: writes pcap or pcapng files that tcpdump, tshark and Wireshark open.
//
// Writes go through a buffer: a plain file is written in 2 MiB blocks at 2 MiB-aligned offsets,
// which the page cache keeps as huge pages (a replay maps such a file with one page-table entry
// per block; see FlowMeter's PacketArena), a gzip file in blocks of 256 KiB of input. pcap files
// hold one link type; pcapng files get an interface description per distinct link type, created
// on first use. Timestamps are written in microseconds or nanoseconds (pcapng's `if_tsresol` =
// 9). With a `CaptureRotation`, a frame that is due starts the next file first: the current one
// is flushed and closed, the next created with its own header (and, for pcapng, its own interface
// descriptions). A path ending in `.gz` is written gzip-compressed (GzipEncoder), a block per
// buffer flushed, one member per file.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Writes captured frames to a pcap or pcapng file.
///
/// Thread-safety: use a writer from one thread at a time.
public final class CaptureWriter {
    /// The kind of file to write.
    public enum Format: Sendable, Equatable {
        /// Classic pcap (little-endian).
        case pcap(nanosecond: Bool)
        /// pcapng (little-endian, one section).
        case pcapng(nanosecond: Bool)

        /// pcapng for names ending in `.pcapng` (or `.pcapng.gz`), otherwise pcap; microseconds
        /// unless asked.
        public static func forPath(_ path: String, nanosecond: Bool = false) -> Format {
            path.hasSuffix(".pcapng") || path.hasSuffix(".pcapng.gz")
                ? .pcapng(nanosecond: nanosecond) : .pcap(nanosecond: nanosecond)
        }
    }

    private let format: Format
    private let snapLength: Int
    private var pcapLinkType: LinkType?
    private var interfaces: [LinkType: UInt32] = [:]
    private var buffer: [UInt8] = []
    private var descriptor: Int32
    private let toMemory: Bool
    /// Compresses the file as it is written (a path ending in `.gz`).
    private var encoder: GzipEncoder?
    private var closed = false
    private let rotation: CaptureRotation?
    /// The path given; with rotation, the files are named after it.
    private let basePath: String
    /// Bytes of the current file written out (the buffer holds the rest).
    private var fileBytes = 0
    private var fileFrames = 0
    private var fileStarted: UInt64 = 0
    /// Bytes written so far, when writing to memory.
    public private(set) var memory: [UInt8] = []
    /// Frames written.
    public private(set) var frames = 0
    /// The file being written.
    public private(set) var path: String
    /// Files started so far (1 without rotation).
    public private(set) var files = 1

    /// Creates `path` (replacing it; gzip-compressed if it ends in `.gz`) and writes the file
    /// header; `-` writes to standard output
    /// (through a duplicate of its descriptor, so `close` leaves standard output open). With
    /// `rotation`, the files are numbered after `path` (`CaptureRotation.path(_:file:)`), the first
    /// created now; standard output cannot rotate.
    public init(
        path: String, format: Format, snapLength: Int = CaptureReader.maximumCapturedLength,
        rotation: CaptureRotation? = nil
    ) throws(CaptureError) {
        if rotation != nil && path == "-" { throw CaptureError(.io, at: 0, "standard output cannot be rotated") }
        basePath = path
        self.path = rotation?.path(path, file: 1) ?? path
        self.rotation = rotation
        self.format = format
        self.snapLength = snapLength
        toMemory = false
        descriptor = path == "-" ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0) : -1
        if path != "-" { descriptor = try Self.create(self.path) }
        encoder = path.hasSuffix(".gz") ? GzipEncoder() : nil
        guard descriptor >= 0 else {
            throw CaptureError(.io, at: 0, "cannot write standard output: \(String(cString: strerror(errno)))")
        }
        buffer.reserveCapacity(Self.blockSize + (1 << 18))
        writeFileHeader()
    }

    /// Writes into memory instead of a file (see `memory`).
    public init(inMemory format: Format, snapLength: Int = CaptureReader.maximumCapturedLength) {
        path = ""
        basePath = ""
        rotation = nil
        self.format = format
        self.snapLength = snapLength
        descriptor = -1
        toMemory = true
        writeFileHeader()
    }

    private static func create(_ path: String) throws(CaptureError) -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CaptureError(.io, at: 0, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        return descriptor
    }

    deinit {
        if !closed { try? close() }
    }

    /// Appends one frame. Bytes beyond the snapshot length are cut (the original length is kept).
    /// With rotation, a frame that is due starts the next file first; if that file cannot be
    /// created, this throws and the writer is closed.
    public func write(
        _ bytes: UnsafeRawBufferPointer, originalLength: Int? = nil, timestamp: UInt64, linkType: LinkType
    ) throws(CaptureError) {
        guard !closed else { throw CaptureError(.io, at: frames, "\(path) is closed") }
        let captured = min(bytes.count, snapLength)
        let original = UInt32(clamping: max(originalLength ?? bytes.count, captured))
        if let rotation, fileFrames > 0,
            rotation.isDue(
                size: fileBytes + buffer.count, adding: recordSize(captured, linkType), timestamp: timestamp,
                started: fileStarted)
        {
            try startNextFile()
        }
        if fileFrames == 0 { fileStarted = timestamp }
        switch format {
        case .pcap(let nanosecond):
            if pcapLinkType == nil {
                pcapLinkType = linkType
                patchPcapLinkType(linkType)
            }
            guard pcapLinkType == linkType else {
                throw CaptureError(
                    .unexpectedBlock, at: frames,
                    "a pcap file holds one link type (\(pcapLinkType!)); use pcapng for \(linkType)")
            }
            let seconds = timestamp / 1_000_000_000
            let fraction = timestamp % 1_000_000_000
            append32(UInt32(truncatingIfNeeded: seconds))
            append32(UInt32(nanosecond ? fraction : fraction / 1_000))
            append32(UInt32(captured))
            append32(original)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<captured]))
        case .pcapng(let nanosecond):
            let interface = interfaceID(for: linkType, nanosecond: nanosecond)
            let padded = (captured + 3) & ~3
            let length = UInt32(32 + padded)
            let units = nanosecond ? timestamp : timestamp / 1_000
            append32(6)
            append32(length)
            append32(interface)
            append32(UInt32(truncatingIfNeeded: units >> 32))
            append32(UInt32(truncatingIfNeeded: units))
            append32(UInt32(captured))
            append32(original)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<captured]))
            buffer.append(contentsOf: repeatElement(0, count: padded - captured))
            append32(length)
        }
        frames += 1
        fileFrames += 1
        if buffer.count >= blockRemaining { try writeBlock() }
    }

    /// The size of the blocks a plain file is written in, at offsets that are multiples of it.
    static let blockSize = 2 << 20

    /// Whether blocks end at 2 MiB offsets of the file (a plain file, not gzip or memory).
    private var writesAlignedBlocks: Bool { encoder == nil && !toMemory }

    /// The bytes that complete the current block: to the next 2 MiB boundary of a plain file,
    /// 256 KiB of input to compress for a gzip file.
    private var blockRemaining: Int {
        writesAlignedBlocks ? Self.blockSize - fileBytes % Self.blockSize : 1 << 18
    }

    /// Writes the buffered bytes of the current block, keeping the rest buffered.
    private func writeBlock() throws(CaptureError) {
        let block = blockRemaining
        guard writesAlignedBlocks, buffer.count > block else { return try flush() }
        try writeOut(buffer[..<block])
        fileBytes += block
        buffer.removeFirst(block)
    }

    /// Ends a live capture's pcapng file as dumpcap does: an interface statistics block for each
    /// interface of the current file, saying how many frames the capture received (`isb_ifrecv`),
    /// how many the kernel dropped (`isb_ifdrop`: Wireshark shows it in the file's properties) and
    /// how many were delivered to the capture (`isb_usrdeliv`), stamped `timestamp` (ns since the
    /// epoch). Nothing for pcap, which has no place for them.
    public func writeStatistics(received: UInt64, dropped: UInt64, delivered: UInt64, timestamp: UInt64)
        throws(CaptureError)
    {
        guard !closed else { throw CaptureError(.io, at: frames, "\(path) is closed") }
        guard case .pcapng(let nanosecond) = format else { return }
        let units = nanosecond ? timestamp : timestamp / 1_000
        for id in interfaces.values.sorted() {
            let length: UInt32 = 20 + 3 * 12 + 4 + 4
            append32(5)
            append32(length)
            append32(id)
            append32(UInt32(truncatingIfNeeded: units >> 32))
            append32(UInt32(truncatingIfNeeded: units))
            for (code, value) in [(4, received), (5, dropped), (8, delivered)] as [(UInt16, UInt64)] {
                append16(code)
                append16(8)
                withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
            }
            append32(0)  // opt_endofopt
            append32(length)
        }
        if buffer.count >= blockRemaining { try writeBlock() }
    }

    /// The bytes a frame adds to the file (with the interface description it may need first).
    private func recordSize(_ captured: Int, _ linkType: LinkType) -> Int {
        switch format {
        case .pcap: 16 + captured
        case .pcapng(let nanosecond):
            32 + ((captured + 3) & ~3) + (interfaces[linkType] == nil ? (nanosecond ? 32 : 24) : 0)
        }
    }

    /// Closes the current file and starts the next one of the rotation.
    private func startNextFile() throws(CaptureError) {
        try closeFile()
        files += 1
        path = rotation?.path(basePath, file: files) ?? basePath
        (fileBytes, fileFrames, pcapLinkType, interfaces) = (0, 0, nil, [:])
        do { descriptor = try Self.create(path) } catch {
            closed = true
            buffer.removeAll()
            throw error
        }
        encoder = encoder.map { _ in GzipEncoder() }
        writeFileHeader()
    }

    /// Writes what is buffered (compressed first, for a gzip file).
    public func flush() throws(CaptureError) {
        guard !buffer.isEmpty else { return }
        if toMemory {
            memory += buffer
            buffer.removeAll(keepingCapacity: true)
            return
        }
        if let encoder {
            try writeOut(buffer.withUnsafeBytes { encoder.compress($0) }[...])
        } else {
            try writeOut(buffer[...])
        }
        fileBytes += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeOut(_ bytes: ArraySlice<UInt8>) throws(CaptureError) {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes {
                Glibc.write(descriptor, $0.baseAddress! + written, $0.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw CaptureError(.io, at: written, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += result
        }
    }

    /// Flushes, ends the gzip member if compressing, and closes the current file.
    private func closeFile() throws(CaptureError) {
        try flush()
        if let encoder { try writeOut(encoder.finish()[...]) }
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
    }

    /// Flushes and closes the file.
    public func close() throws(CaptureError) {
        guard !closed else { return }
        closed = true
        try closeFile()
    }

    // MARK: Encoding

    private func append32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    private func append16(_ value: UInt16) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    private func writeFileHeader() {
        switch format {
        case .pcap(let nanosecond):
            append32(nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4)
            append16(2)
            append16(4)
            append32(0)
            append32(0)
            append32(UInt32(snapLength))
            append32(LinkType.ethernet.rawValue)  // patched by the first frame's link type
        case .pcapng:
            let application = Array("swift-netisr".utf8)
            let optionLength = (application.count + 3) & ~3
            let length = UInt32(28 + 4 + optionLength + 4)
            append32(0x0A0D_0D0A)
            append32(length)
            append32(0x1A2B_3C4D)
            append16(1)
            append16(0)
            append32(0xFFFF_FFFF)
            append32(0xFFFF_FFFF)  // section length: unknown
            append16(4)  // shb_userappl
            append16(UInt16(application.count))
            buffer.append(contentsOf: application)
            buffer.append(contentsOf: repeatElement(0, count: optionLength - application.count))
            append32(0)  // opt_endofopt
            append32(length)
        }
    }

    private func patchPcapLinkType(_ linkType: LinkType) {
        let value = linkType.rawValue.littleEndian
        if buffer.count >= 24 {
            withUnsafeBytes(of: value) { bytes in
                for index in 0..<4 { buffer[20 + index] = bytes[index] }
            }
        }
    }

    private func interfaceID(for linkType: LinkType, nanosecond: Bool) -> UInt32 {
        if let id = interfaces[linkType] { return id }
        let id = UInt32(interfaces.count)
        interfaces[linkType] = id
        let length: UInt32 = nanosecond ? 32 : 24
        append32(1)
        append32(length)
        append16(UInt16(truncatingIfNeeded: linkType.rawValue))
        append16(0)
        append32(UInt32(snapLength))
        if nanosecond {
            append16(9)  // if_tsresol
            append16(1)
            buffer.append(contentsOf: [9, 0, 0, 0])
        }
        append32(0)  // opt_endofopt
        append32(length)
        return id
    }
}
