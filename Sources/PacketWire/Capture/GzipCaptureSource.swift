// GzipCaptureSource: a gzip-compressed capture (`.pcap.gz`, as packet archives such as MAWI's are
// published, and as tshark reads them) decompressed as it is read — RFC 1952 members, each an
// RFC 1951 DEFLATE stream checked against its CRC-32 and length — into the reader's buffer, with a
// 32 KiB window: memory stays bounded whatever the file holds.
//
// The input is untrusted: every code, length and distance is checked, and damage is a
// `CaptureError` (`.damagedCompression`, or `.truncatedRecord` when the data stops early) at the
// offset in the compressed file where it was found. Owned by one reader; no shared state. Its two
// buffers (the compressed input and the window) are raw memory it allocates and frees itself, for
// a decoder loop without copy-on-write checks.

/// Decompresses a gzip stream read from another source.
final class GzipCaptureSource: CaptureSource {
    private let input: any CaptureSource
    /// The compressed bytes read and not yet consumed (`inStart..<inEnd` of `inCapacity`).
    private let inBuffer: UnsafeMutablePointer<UInt8>
    private static let inCapacity = 1 << 16
    @exclusivity(unchecked) private var inStart = 0
    @exclusivity(unchecked) private var inEnd = 0
    private var inputEnded = false
    /// Compressed bytes consumed before `inBuffer`'s first.
    @exclusivity(unchecked) private var inBase = 0
    @exclusivity(unchecked) private var bits: UInt64 = 0
    @exclusivity(unchecked) private var bitCount = 0

    /// The last 32 KiB produced before the current `read` call's output (a match's source when
    /// it reaches back past that output), as a ring; brought up to date at the end of each call.
    private let window: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var windowEnd = 0
    /// Bytes produced in this member (a distance may not reach before its start).
    @exclusivity(unchecked) private var produced = 0
    @exclusivity(unchecked) private var crc = CRC32()

    private enum State {
        case memberHeader, blockHeader, stored(remaining: Int), codes, trailer, finished
    }
    private var state = State.memberHeader
    private var lastBlock = false
    @exclusivity(unchecked) private var literals = HuffmanTable()
    @exclusivity(unchecked) private var distances = HuffmanTable()
    /// A match not yet copied out in full.
    @exclusivity(unchecked) private var pendingLength = 0
    @exclusivity(unchecked) private var pendingDistance = 0

    static let windowSize = 1 << 15

    var size: Int? { nil }

    var fileProgress: (read: Int, total: Int?)? { (inBase + inStart, input.size) }

    /// Decompresses `input`, whose first bytes (already read, to see the gzip magic) are `prefix`.
    init(_ input: any CaptureSource, prefix: [UInt8]) {
        self.input = input
        inBuffer = .allocate(capacity: Self.inCapacity)
        window = .allocate(capacity: Self.windowSize)
        window.initialize(repeating: 0, count: Self.windowSize)
        inBuffer.initialize(repeating: 0, count: Self.inCapacity)
        let kept = prefix.prefix(Self.inCapacity)
        for (index, byte) in kept.enumerated() { inBuffer[index] = byte }
        inEnd = kept.count
    }

    deinit {
        inBuffer.deallocate()
        window.deallocate()
    }

    /// Whether `bytes` start like a gzip member.
    static func isGzip(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B }

    func read(into destination: UnsafeMutableRawPointer, count: Int) throws(CaptureError) -> Int {
        var written = 0
        let output = destination.assumingMemoryBound(to: UInt8.self)
        // The checksum covers the output in spans: up to `checked`, then the rest.
        var checked = 0
        defer {
            crc.add(UnsafeBufferPointer(start: output + checked, count: written - checked))
            remember(output, count: written)
        }
        while written < count {
            switch state {
            case .finished:
                return written
            case .memberHeader:
                guard try readMemberHeader() else {
                    state = .finished
                    return written
                }
                state = .blockHeader
            case .blockHeader:
                if lastBlock {
                    state = .trailer
                    continue
                }
                try readBlockHeader()
            case .stored(let remaining):
                if remaining == 0 {
                    state = .blockHeader
                    continue
                }
                let copied = try copyStored(min(remaining, count - written), to: output + written)
                written += copied
                produced += copied
                state = .stored(remaining: remaining - copied)
            case .codes:
                try decodeCodes(into: output, written: &written, count: count)
            case .trailer:
                crc.add(UnsafeBufferPointer(start: output + checked, count: written - checked))
                checked = written
                try readTrailer()
                state = .memberHeader
            }
        }
        return written
    }

    // MARK: Members

    /// Reads a member's header; false at the end of the input (after at least one member).
    private func readMemberHeader() throws(CaptureError) -> Bool {
        alignToByte()
        if !(try hasInput()) { return false }
        let start = offset
        guard try takeByte() == 0x1F, try hasInput(), try takeByte() == 0x8B else {
            // Bytes after the last member that do not start another (padding): ignored, as gzip does.
            guard start > 0 else { throw damage("not a gzip member", at: start) }
            return false
        }
        guard try takeByte() == 8 else { throw damage("gzip compression method is not deflate", at: start + 2) }
        let flags = try takeByte()
        guard flags & 0xE0 == 0 else { throw damage("reserved gzip flags are set", at: start + 3) }
        for _ in 0..<6 { _ = try takeByte() }  // modification time, extra flags, operating system
        if flags & 0x04 != 0 {
            let length = Int(try takeByte()) | Int(try takeByte()) << 8
            for _ in 0..<length { _ = try takeByte() }
        }
        if flags & 0x08 != 0 { while try takeByte() != 0 {} }  // file name
        if flags & 0x10 != 0 { while try takeByte() != 0 {} }  // comment
        if flags & 0x02 != 0 { _ = (try takeByte(), try takeByte()) }  // header CRC-16
        lastBlock = false
        produced = 0
        crc = CRC32()
        return true
    }

    private func readTrailer() throws(CaptureError) {
        alignToByte()
        let at = offset
        var stored: UInt32 = 0
        for shift in stride(from: 0, to: 32, by: 8) { stored |= UInt32(try takeByte()) << shift }
        var length: UInt32 = 0
        for shift in stride(from: 0, to: 32, by: 8) { length |= UInt32(try takeByte()) << shift }
        guard stored == crc.value else { throw damage("gzip CRC-32 mismatch", at: at) }
        guard length == UInt32(truncatingIfNeeded: produced) else { throw damage("gzip length mismatch", at: at + 4) }
    }

    // MARK: Blocks

    private func readBlockHeader() throws(CaptureError) {
        let at = offset
        lastBlock = try takeBits(1) == 1
        switch try takeBits(2) {
        case 0:
            alignToByte()
            let length = Int(try takeBits(16))
            let complement = Int(try takeBits(16))
            guard length == ~complement & 0xFFFF else { throw damage("stored block length check failed", at: at) }
            state = .stored(remaining: length)
        case 1:
            literals = HuffmanTable.fixedLiterals
            distances = HuffmanTable.fixedDistances
            state = .codes
        case 2:
            try readDynamicTables(at: at)
            state = .codes
        default:
            throw damage("invalid deflate block type", at: at)
        }
    }

    /// The order in which code-length code lengths are stored (RFC 1951, 3.2.7).
    private static let lengthCodeOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    private func readDynamicTables(at: Int) throws(CaptureError) {
        let literalCount = Int(try takeBits(5)) + 257
        let distanceCount = Int(try takeBits(5)) + 1
        let lengthCodeCount = Int(try takeBits(4)) + 4
        guard literalCount <= 286, distanceCount <= 30 else { throw damage("too many deflate codes", at: at) }
        var lengthCodeLengths = [UInt8](repeating: 0, count: 19)
        for index in 0..<lengthCodeCount { lengthCodeLengths[Self.lengthCodeOrder[index]] = UInt8(try takeBits(3)) }
        guard let lengthCodes = HuffmanTable(lengths: lengthCodeLengths) else {
            throw damage("invalid code-length code", at: at)
        }
        var lengths = [UInt8](repeating: 0, count: literalCount + distanceCount)
        var index = 0
        while index < lengths.count {
            let symbol = try decode(lengthCodes)
            var repeatCount = 1
            var value: UInt8 = 0
            switch symbol {
            case 0...15:
                value = UInt8(symbol)
            case 16:
                guard index > 0 else { throw damage("repeated code length with no previous one", at: offset) }
                value = lengths[index - 1]
                repeatCount = 3 + Int(try takeBits(2))
            case 17:
                repeatCount = 3 + Int(try takeBits(3))
            default:
                repeatCount = 11 + Int(try takeBits(7))
            }
            guard index + repeatCount <= lengths.count else { throw damage("code lengths overrun", at: offset) }
            for _ in 0..<repeatCount {
                lengths[index] = value
                index += 1
            }
        }
        guard lengths[256] != 0 else { throw damage("no end-of-block code", at: at) }
        guard let literalTable = HuffmanTable(lengths: Array(lengths[0..<literalCount])),
            let distanceTable = HuffmanTable(lengths: Array(lengths[literalCount...]), allowsIncomplete: true)
        else { throw damage("invalid deflate code lengths", at: at) }
        literals = literalTable
        distances = distanceTable
    }

    /// Decodes literals and matches until the block ends or `count` bytes are written.
    private func decodeCodes(
        into output: UnsafeMutablePointer<UInt8>, written: inout Int, count: Int
    ) throws(CaptureError) {
        // The tables by pointer for the loop: passed as values, each symbol retained and released
        // their storage (a fifth of a gzip replay).
        try literals.entries.withUnsafeBufferPointer { (literals) throws(CaptureError) in
            try distances.entries.withUnsafeBufferPointer { (distances) throws(CaptureError) in
                try decodeCodes(
                    into: output, written: &written, count: count, literals: literals.baseAddress!,
                    distances: distances.baseAddress!)
            }
        }
    }

    private func decodeCodes(
        into output: UnsafeMutablePointer<UInt8>, written: inout Int, count: Int, literals: UnsafePointer<UInt32>,
        distances: UnsafePointer<UInt32>
    ) throws(CaptureError) {
        // Read once per call: a static table read in the loop costs a `swift_once` call each time.
        let (lengthBase, lengthExtra) = (DeflateCodes.lengthBase, DeflateCodes.lengthExtra)
        let (distanceBase, distanceExtra) = (DeflateCodes.distanceBase, DeflateCodes.distanceExtra)
        while written < count {
            if pendingLength > 0 {
                let copied = min(pendingLength, count - written)
                copyMatch(copied, distance: pendingDistance, to: output, at: &written)
                (produced, pendingLength) = (produced + copied, pendingLength - copied)
                continue
            }
            let at = offset
            let symbol = try decode(literals)
            if symbol < 256 {
                emit(UInt8(symbol), to: output, at: &written)
            } else if symbol == 256 {
                state = .blockHeader
                return
            } else {
                let lengthCode = symbol - 257
                guard lengthCode < 29 else { throw damage("invalid length code", at: at) }
                pendingLength = lengthBase[lengthCode] + Int(try takeBits(lengthExtra[lengthCode]))
                let distanceCode = try decode(distances)
                guard distanceCode < 30 else { throw damage("invalid distance code", at: at) }
                pendingDistance = distanceBase[distanceCode] + Int(try takeBits(distanceExtra[distanceCode]))
                guard pendingDistance <= produced else { throw damage("distance reaches before the data", at: at) }
            }
        }
    }

    /// Copies up to `count` (≥ 1) bytes of a stored block's data: the whole bytes still in the bit
    /// buffer first (the block's data starts on a byte boundary), then straight from the input
    /// buffer, refilled once if it is empty. Returns how many it copied (at least one).
    private func copyStored(_ count: Int, to output: UnsafeMutablePointer<UInt8>) throws(CaptureError) -> Int {
        var copied = 0
        while copied < count && bitCount >= 8 {
            output[copied] = UInt8(truncatingIfNeeded: bits)
            bits >>= 8
            bitCount -= 8
            copied += 1
        }
        guard copied < count else { return copied }
        try refillIfEmpty()
        let run = min(count - copied, inEnd - inStart)
        (output + copied).update(from: inBuffer + inStart, count: run)
        inStart += run
        return copied + run
    }

    @inline(__always)
    private func emit(_ byte: UInt8, to output: UnsafeMutablePointer<UInt8>, at written: inout Int) {
        output[written] = byte
        written += 1
        produced += 1
    }

    /// Copies `count` bytes from `distance` bytes back: from the window while the source lies
    /// before this call's output, then from the output itself, eight bytes at a step when the
    /// distance allows (each step reads only bytes already written; a shorter distance repeats
    /// them byte by byte, as DEFLATE means it to).
    @inline(__always)
    private func copyMatch(
        _ count: Int, distance: Int, to output: UnsafeMutablePointer<UInt8>, at written: inout Int
    ) {
        var remaining = count
        while remaining > 0 && distance > written {
            output[written] = window[(windowEnd - (distance - written)) & (Self.windowSize - 1)]
            written += 1
            remaining -= 1
        }
        if distance >= 8 {
            while remaining >= 8 {
                let chunk = UnsafeRawPointer(output + written - distance).loadUnaligned(as: UInt64.self)
                UnsafeMutableRawPointer(output + written).storeBytes(of: chunk, as: UInt64.self)
                written += 8
                remaining -= 8
            }
        }
        while remaining > 0 {
            output[written] = output[written - distance]
            written += 1
            remaining -= 1
        }
    }

    /// Keeps the last 32 KiB of what a `read` call wrote to `output` (its first `count` bytes) in
    /// the window, after what was there: the source of matches that reach back past the next
    /// call's output. Once per call, not per byte.
    private func remember(_ output: UnsafeMutablePointer<UInt8>, count: Int) {
        let size = Self.windowSize
        if count >= size {
            window.update(from: output + count - size, count: size)
            windowEnd = 0
            return
        }
        let first = min(count, size - windowEnd)
        (window + windowEnd).update(from: output, count: first)
        window.update(from: output + first, count: count - first)
        windowEnd = (windowEnd + count) & (size - 1)
    }

    // MARK: Bits

    /// The compressed file's offset of the next unconsumed byte.
    private var offset: Int { inBase + inStart - bitCount / 8 }

    private func damage(_ what: String, at offset: Int) -> CaptureError {
        CaptureError(.damagedCompression, at: offset, "damaged gzip data: \(what)")
    }

    /// Whether input remains (reading more if the buffer is empty).
    private func hasInput() throws(CaptureError) -> Bool {
        if bitCount >= 8 || inStart < inEnd { return true }
        try refillBuffer()
        return inStart < inEnd
    }

    private func refillBuffer() throws(CaptureError) {
        guard !inputEnded else { return }
        inBase += inEnd
        inStart = 0
        inEnd = try input.read(into: inBuffer, count: Self.inCapacity)
        if inEnd == 0 { inputEnded = true }
    }

    /// Refills the input buffer if every byte of it was consumed; throws if the input has ended.
    @inline(__always)
    private func refillIfEmpty() throws(CaptureError) {
        guard inStart == inEnd else { return }
        try refillBuffer()
        guard inStart < inEnd else {
            throw CaptureError(.truncatedRecord, at: offset, "the gzip data ends early")
        }
    }

    /// Makes at least `count` (≤ 57) bits available; throws if the input ends first.
    @inline(__always)
    private func need(_ count: Int) throws(CaptureError) {
        while bitCount < count {
            if inEnd - inStart >= 8 {
                // Whole bytes up to 56 bits at once.
                let word = UInt64(littleEndian: UnsafeRawPointer(inBuffer + inStart).loadUnaligned(as: UInt64.self))
                let taken = (63 - bitCount) >> 3
                bits |= (word & ((1 << UInt64(taken * 8)) - 1)) << UInt64(bitCount)
                inStart += taken
                bitCount += taken * 8
                continue
            }
            try refillIfEmpty()
            bits |= UInt64(inBuffer[inStart]) << UInt64(bitCount)
            inStart += 1
            bitCount += 8
        }
    }

    @inline(__always)
    private func takeBits(_ count: Int) throws(CaptureError) -> UInt64 {
        guard count > 0 else { return 0 }
        try need(count)
        let value = bits & ((1 << UInt64(count)) - 1)
        bits >>= UInt64(count)
        bitCount -= count
        return value
    }

    private func takeByte() throws(CaptureError) -> UInt8 { UInt8(try takeBits(8)) }

    private func alignToByte() {
        let drop = bitCount % 8
        bits >>= UInt64(drop)
        bitCount -= drop
    }

    /// Decodes one symbol with `table`.
    private func decode(_ table: HuffmanTable) throws(CaptureError) -> Int {
        try table.entries.withUnsafeBufferPointer { (entries) throws(CaptureError) in try decode(entries.baseAddress!) }
    }

    /// Decodes one symbol with a table's entries (`HuffmanTable`): peeks up to 15 bits (fewer at
    /// the very end of the input).
    @inline(__always)
    private func decode(_ entries: UnsafePointer<UInt32>) throws(CaptureError) -> Int {
        if bitCount < HuffmanTable.maximumLength {
            do throws(CaptureError) { try need(HuffmanTable.maximumLength) } catch {
                // The last code of the input may be shorter than the peek.
                guard bitCount > 0 else { throw error }
            }
        }
        var entry = entries[Int(bits & ((1 << UInt64(HuffmanTable.rootBits)) - 1))]
        if entry & HuffmanTable.linkFlag != 0 {
            let next = (bits >> UInt64(HuffmanTable.rootBits)) & ((1 << UInt64(HuffmanTable.subtableBits)) - 1)
            entry = entries[Int(entry >> 16) + Int(next)]
        }
        let length = Int((entry >> 9) & 0x3F)
        guard length > 0, length <= bitCount else {
            throw damage(length == 0 ? "invalid Huffman code" : "the gzip data ends inside a code", at: offset)
        }
        bits >>= UInt64(length)
        bitCount -= length
        return Int(entry & 0x1FF)
    }
}
