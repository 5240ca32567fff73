// RowIndex: an open-addressing hash index from a key's 64-bit hash to a row number, for the
// per-workstream tables. The rows (and the keys, for equality) live in the tables' own arrays;
// the index stores only row numbers and hashes, probes linearly and doubles at half load. It
// replaces Dictionary on the per-packet path, whose SipHash over 40-byte keys dominated the
// replay's profile.

struct RowIndex {
    private var rows: [Int32]
    private var hashes: [UInt64]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 1_024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        rows = Array(repeating: -1, count: size)
        hashes = Array(repeating: 0, count: size)
        mask = size - 1
    }

    /// The row whose key hashes to `hash` and satisfies `matches`, if any.
    @inline(__always)
    func find(_ hash: UInt64, _ matches: (Int) -> Bool) -> Int? {
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let row = rows[slot]
            if row < 0 { return nil }
            if hashes[slot] == hash && matches(Int(row)) { return Int(row) }
            slot = (slot + 1) & mask
        }
    }

    /// Adds `row` under `hash` (the caller knows it is absent, or replaces which row a key finds
    /// by inserting after the old one is no longer wanted: see `replace`).
    mutating func insert(_ hash: UInt64, row: Int) {
        if (count + 1) * 2 > rows.count { grow() }
        var slot = Int(truncatingIfNeeded: hash) & mask
        while rows[slot] >= 0 { slot = (slot + 1) & mask }
        rows[slot] = Int32(row)
        hashes[slot] = hash
        count += 1
    }

    /// Points the entry that finds `old` at `new` instead.
    mutating func replace(_ hash: UInt64, old: Int, new: Int) {
        var slot = Int(truncatingIfNeeded: hash) & mask
        while rows[slot] >= 0 {
            if rows[slot] == Int32(old) {
                rows[slot] = Int32(new)
                return
            }
            slot = (slot + 1) & mask
        }
    }

    private mutating func grow() {
        let oldRows = rows
        let oldHashes = hashes
        rows = Array(repeating: -1, count: oldRows.count * 2)
        hashes = Array(repeating: 0, count: oldRows.count * 2)
        mask = rows.count - 1
        count = 0
        for slot in 0..<oldRows.count where oldRows[slot] >= 0 {
            insert(oldHashes[slot], row: Int(oldRows[slot]))
        }
    }
}

/// A fast 64-bit mix of key fields (the finalizer of MurmurHash3), for RowIndex.
@inline(__always)
func mixHash(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64, _ e: UInt64) -> UInt64 {
    var h = a &* 0x9E37_79B9_7F4A_7C15
    h ^= b &* 0xC2B2_AE3D_27D4_EB4F
    h ^= c &* 0x1656_67B1_9E37_79F9
    h ^= d &* 0x85EB_CA77_C2B2_AE63
    h ^= e &* 0x27D4_EB2F_1656_67C5
    h ^= h >> 33
    h &*= 0xFF51_AFD7_ED55_8CCD
    h ^= h >> 33
    h &*= 0xC4CE_B9FE_1A85_EC53
    h ^= h >> 33
    return h
}
