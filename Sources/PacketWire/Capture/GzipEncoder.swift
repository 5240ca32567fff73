// GzipEncoder: compresses a capture as it is written (`CaptureWriter`, paths ending in `.gz`) into
// one gzip member (RFC 1952) of DEFLATE blocks (RFC 1951), as the archives tshark and zcat read.
//
// Each `compress` call is one block: LZ77 over a 32 KiB window, matches found through hash chains
// of 4-byte prefixes (a few candidates each, as a fast compression level looks), coded with
// DEFLATE's fixed Huffman codes; a block that would come out larger than its input is stored
// instead, so incompressible payloads cost at most a few bytes per 64 KiB. Owned by one writer
// (one thread). Its hash tables are raw memory it allocates once and frees itself, for a match
// loop without bounds or copy-on-write checks; the data it reads there is the window it keeps plus
// the block being compressed, indexed within their bounds.

/// Compresses bytes into a gzip member, block by block.
final class GzipEncoder {
    private static let windowSize = 1 << 15
    private static let hashSize = 1 << 15
    /// Candidates looked at per position.
    private static let maximumChain = 8
    private static let minimumMatch = 4
    private static let maximumMatch = 258

    /// The last 32 KiB of input (what the next block's matches may reach back into).
    private var history: [UInt8] = []
    private var checksum = CRC32()
    private var size: UInt32 = 0
    private var bits: UInt64 = 0
    private var bitCount = 0
    /// Compressed bytes not yet taken.
    private var output: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3]
    /// The latest position of each 4-byte prefix hash, -1 for none.
    private let head = UnsafeMutablePointer<Int32>.allocate(capacity: GzipEncoder.hashSize)
    /// For each position, the one before with the same hash (-1 for none).
    private var previous: UnsafeMutablePointer<Int32>
    private var previousCapacity = 0
    /// A block's literals (< 256) and matches (`1 << 31 | length << 16 | distance`).
    private var tokens: [UInt32] = []

    /// The reversed fixed Huffman code of each literal/length symbol, with its length above bit 16.
    private static let fixedCodes: [UInt32] = (0..<288).map { symbol in
        let (code, length): (Int, Int) =
            switch symbol {
            case 0...143: (0x30 + symbol, 8)
            case 144...255: (0x190 + symbol - 144, 9)
            case 256...279: (symbol - 256, 7)
            default: (0xC0 + symbol - 280, 8)
            }
        return UInt32(reversed(code, length)) | UInt32(length) << 16
    }
    /// The length code (0…28) of each match length 0…258.
    private static let lengthCodes: [UInt8] = (0...258).map { length in
        UInt8(DeflateCodes.lengthBase.lastIndex { $0 <= max(length, 3) }!)
    }
    /// The distance code (0…29) of each distance 0…32768.
    private static let distanceCodes: [UInt8] = (0...32_768).map { distance in
        UInt8(DeflateCodes.distanceBase.lastIndex { $0 <= max(distance, 1) }!)
    }

    private static func reversed(_ code: Int, _ length: Int) -> Int {
        var (code, result) = (code, 0)
        for _ in 0..<length {
            result = result << 1 | code & 1
            code >>= 1
        }
        return result
    }

    init() { previous = .allocate(capacity: 1) }

    deinit {
        head.deallocate()
        previous.deallocate()
    }

    /// Compresses `input` as one block; returns the compressed bytes ready so far (the header
    /// first), which the encoder then forgets.
    func compress(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        guard !input.isEmpty else { return take() }
        checksum.add(input)
        size &+= UInt32(truncatingIfNeeded: input.count)
        let data = history + input
        findMatches(data, from: history.count)
        if fixedBlockBits() <= 8 * (input.count + 5 * (input.count / 65_535 + 1)) {
            writeFixedBlock(data)
        } else {
            writeStoredBlocks(input)
        }
        history = Array(data.suffix(Self.windowSize))
        return take()
    }

    /// Ends the member (a final empty block, the CRC-32 and the length); returns its last bytes.
    func finish() -> [UInt8] {
        writeBits(0b011, 3)  // final block, fixed codes
        writeSymbol(256)
        alignToByte()
        for value in [checksum.value, size] {
            withUnsafeBytes(of: value.littleEndian) { output.append(contentsOf: $0) }
        }
        return take()
    }

    private func take() -> [UInt8] {
        defer { output.removeAll(keepingCapacity: true) }
        return output
    }

    // MARK: Matching

    /// Fills `tokens` with `data[start...]` as literals and matches (which may reach back into
    /// `data[..<start]`).
    private func findMatches(_ data: [UInt8], from start: Int) {
        tokens.removeAll(keepingCapacity: true)
        if previousCapacity < data.count {
            previous.deallocate()
            previous = .allocate(capacity: data.count)
            previousCapacity = data.count
        }
        head.initialize(repeating: -1, count: Self.hashSize)
        let previous = previous
        let head = head
        data.withUnsafeBytes { bytes in
            let count = bytes.count
            func prefix(_ at: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self) }
            func insert(_ at: Int) -> Int {
                let hash = Int((prefix(at) &* 2_654_435_761) >> 17)
                let candidate = Int(head[hash])
                previous[at] = Int32(candidate)
                head[hash] = Int32(at)
                return candidate
            }
            var position = 0
            while position + Self.minimumMatch <= start {
                _ = insert(position)
                position += 1
            }
            position = start
            while position < count {
                guard position + Self.minimumMatch <= count else {
                    tokens.append(UInt32(bytes[position]))
                    position += 1
                    continue
                }
                var candidate = insert(position)
                let limit = min(Self.maximumMatch, count - position)
                var (best, bestDistance, chain) = (0, 0, Self.maximumChain)
                let here = prefix(position)
                while candidate >= 0, position - candidate <= Self.windowSize, chain > 0 {
                    if bytes[candidate + best] == bytes[position + best] && prefix(candidate) == here {
                        var length = Self.minimumMatch
                        while length < limit && bytes[candidate + length] == bytes[position + length] { length += 1 }
                        if length > best {
                            (best, bestDistance) = (length, position - candidate)
                            if length == limit { break }
                        }
                    }
                    candidate = Int(previous[candidate])
                    chain -= 1
                }
                guard best >= Self.minimumMatch else {
                    tokens.append(UInt32(bytes[position]))
                    position += 1
                    continue
                }
                tokens.append(1 << 31 | UInt32(best) << 16 | UInt32(bestDistance))
                for inside in (position + 1)..<(position + best) where inside + Self.minimumMatch <= count {
                    _ = insert(inside)
                }
                position += best
            }
        }
    }

    // MARK: Coding

    /// The bits `tokens` take as a fixed-code block.
    private func fixedBlockBits() -> Int {
        var total = 3 + 7
        for token in tokens {
            if token & 1 << 31 == 0 {
                total += token < 144 ? 8 : 9
            } else {
                let code = Int(Self.lengthCodes[Int(token >> 16 & 0x1FF)])
                let distanceCode = Int(Self.distanceCodes[Int(token & 0xFFFF)])
                total +=
                    Int(Self.fixedCodes[257 + code] >> 16) + DeflateCodes.lengthExtra[code] + 5
                    + DeflateCodes.distanceExtra[distanceCode]
            }
        }
        return total
    }

    private func writeFixedBlock(_ data: [UInt8]) {
        writeBits(0b010, 3)  // not final, fixed codes
        let (lengthBase, lengthExtra) = (DeflateCodes.lengthBase, DeflateCodes.lengthExtra)
        let (distanceBase, distanceExtra) = (DeflateCodes.distanceBase, DeflateCodes.distanceExtra)
        let (lengthCodes, distanceCodes) = (Self.lengthCodes, Self.distanceCodes)
        for token in tokens {
            guard token & 1 << 31 != 0 else {
                writeSymbol(Int(token))
                continue
            }
            let length = Int(token >> 16 & 0x1FF)
            let distance = Int(token & 0xFFFF)
            let code = Int(lengthCodes[length])
            writeSymbol(257 + code)
            writeBits(UInt64(length - lengthBase[code]), lengthExtra[code])
            let distanceCode = Int(distanceCodes[distance])
            writeBits(UInt64(Self.reversed(distanceCode, 5)), 5)
            writeBits(UInt64(distance - distanceBase[distanceCode]), distanceExtra[distanceCode])
        }
        writeSymbol(256)
    }

    private func writeStoredBlocks(_ input: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < input.count {
            let length = min(65_535, input.count - offset)
            writeBits(0, 3)  // not final, stored
            alignToByte()
            for value in [UInt16(length), ~UInt16(length)] {
                withUnsafeBytes(of: value.littleEndian) { output.append(contentsOf: $0) }
            }
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset..<(offset + length)]))
            offset += length
        }
    }

    private func writeSymbol(_ symbol: Int) {
        let code = Self.fixedCodes[symbol]
        writeBits(UInt64(code & 0xFFFF), Int(code >> 16))
    }

    /// Appends `count` bits of `value`, least significant first.
    private func writeBits(_ value: UInt64, _ count: Int) {
        bits |= value << UInt64(bitCount)
        bitCount += count
        while bitCount >= 8 {
            output.append(UInt8(truncatingIfNeeded: bits))
            bits >>= 8
            bitCount -= 8
        }
    }

    private func alignToByte() {
        if bitCount > 0 { output.append(UInt8(truncatingIfNeeded: bits)) }
        (bits, bitCount) = (0, 0)
    }
}
