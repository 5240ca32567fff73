// DeflateTables: the pieces of the gzip decoder (GzipCaptureSource) and encoder (GzipEncoder)
// that are plain values — DEFLATE's length and distance codes, a canonical Huffman code as a
// lookup table, and the CRC-32 a gzip member is checked with. Built from untrusted code lengths:
// a table that would over-subscribe the code space is refused.

/// DEFLATE's length codes (symbols 257…285) and distance codes (0…29): each code's base value and
/// its extra bits (RFC 1951, 3.2.5).
enum DeflateCodes {
    static let lengthBase: [Int] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227,
        258,
    ]
    static let lengthExtra: [Int] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ]
    static let distanceBase: [Int] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
        6145, 8193, 12289, 16385, 24577,
    ]
    static let distanceExtra: [Int] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
    ]
}

/// A canonical Huffman code as a two-level lookup table. The first level is indexed by the next
/// 9 input bits (least significant first, as DEFLATE packs codes): an entry holds the symbol (low
/// 9 bits) and its code's length (the next 6), or, for the 9-bit prefix of longer codes, a link
/// (`linkFlag`, and the start of a 64-entry second-level table in the upper 16 bits) indexed by
/// the 6 bits after them. 0 where no code starts. Built per dynamic block, so its size matters: a
/// single table of 2^15 entries took a third of a replay of a file gzip -6 made (a new code every
/// few tens of KiB); this one is 512 entries plus 64 for each prefix of a long code.
struct HuffmanTable {
    static let maximumLength = 15
    /// Bits the first level is indexed by.
    static let rootBits = 9
    /// Bits a second-level table is indexed by (those after the first `rootBits`).
    static let subtableBits = maximumLength - rootBits
    /// Set in a first-level entry that links to a second-level table.
    static let linkFlag: UInt32 = 1 << 15
    var entries: [UInt32]

    init() { entries = [] }

    /// The table of code lengths `lengths` (0: symbol unused); nil if they over-subscribe the
    /// code space, or leave it incomplete (allowed for the distance code, which may have one).
    init?(lengths: [UInt8], allowsIncomplete: Bool = false) {
        var counts = [Int](repeating: 0, count: Self.maximumLength + 1)
        for length in lengths { counts[Int(length)] += 1 }
        counts[0] = 0
        var left = 1
        for length in 1...Self.maximumLength {
            left = left * 2 - counts[length]
            if left < 0 { return nil }
        }
        let used = lengths.count { $0 > 0 }
        if left > 0 && !(allowsIncomplete && used <= 1) && used > 0 { return nil }
        var next = [Int](repeating: 0, count: Self.maximumLength + 2)
        for length in 1...Self.maximumLength { next[length + 1] = (next[length] + counts[length]) << 1 }
        var entries = [UInt32](repeating: 0, count: 1 << Self.rootBits)
        for (symbol, length) in lengths.enumerated() where length > 0 {
            let length = Int(length)
            let code = next[length]
            next[length] += 1
            var reversed = 0
            for bit in 0..<length where code & (1 << bit) != 0 { reversed |= 1 << (length - 1 - bit) }
            let entry = UInt32(length << 9 | symbol)
            // Every index whose low `length` bits are the code (the rest are the next code's).
            var start = 0
            var index = reversed
            var step = 1 << length
            var end = 1 << Self.rootBits
            if length > Self.rootBits {
                let prefix = reversed & ((1 << Self.rootBits) - 1)
                if entries[prefix] & Self.linkFlag == 0 {
                    entries[prefix] = Self.linkFlag | UInt32(entries.count) << 16
                    entries.append(contentsOf: repeatElement(0, count: 1 << Self.subtableBits))
                }
                start = Int(entries[prefix] >> 16)
                index = reversed >> Self.rootBits
                step = 1 << (length - Self.rootBits)
                end = 1 << Self.subtableBits
            }
            while index < end {
                entries[start + index] = entry
                index += step
            }
        }
        self.entries = entries
    }

    static let fixedLiterals = HuffmanTable(
        lengths: [UInt8](repeating: 8, count: 144) + [UInt8](repeating: 9, count: 112)
            + [UInt8](repeating: 7, count: 24) + [UInt8](repeating: 8, count: 8))!
    /// All 32 five-bit codes: 30 and 31 decode, and are refused as distances.
    static let fixedDistances = HuffmanTable(lengths: [UInt8](repeating: 5, count: 32))!
}

/// CRC-32 (IEEE 802.3, as gzip uses), eight bytes at a step ("slicing by 8": eight 256-entry
/// tables, table k giving a byte's contribution k bytes further on, so the eight lookups of a step
/// are independent), then a byte at a time for the rest. Byte by byte the decompressor spent a
/// third of a gzip replay on it.
struct CRC32 {
    /// Table k (entries 256·k ..< 256·(k+1)): the CRC of a byte followed by k zero bytes.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var value = UInt32(index)
            for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
            tables[index] = value
        }
        for index in 0..<256 {
            for table in 1..<8 {
                let previous = tables[256 * (table - 1) + index]
                tables[256 * table + index] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()
    private var state: UInt32 = 0xFFFF_FFFF

    /// The checksum of the bytes added so far.
    var value: UInt32 { ~state }

    mutating func add(_ byte: UInt8) {
        withUnsafeBytes(of: byte) { add($0) }
    }

    mutating func add(_ bytes: UnsafeBufferPointer<UInt8>) { add(UnsafeRawBufferPointer(bytes)) }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        state = Self.tables.withUnsafeBufferPointer { table in
            let table = table.baseAddress!
            var state = state
            var position = 0
            while bytes.count - position >= 8 {
                let low = state ^ UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt32.self))
                let high = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self))
                state =
                    table[7 * 256 + Int(low & 0xFF)] ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)] ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)] ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[256 + Int((high >> 16) & 0xFF)] ^ table[Int(high >> 24)]
                position += 8
            }
            while position < bytes.count {
                state =
                    table[Int((state ^ UInt32(base.load(fromByteOffset: position, as: UInt8.self))) & 0xFF)]
                    ^ (state >> 8)
                position += 1
            }
            return state
        }
    }
}
