// RowIndex: an open-addressing hash index from a key's 64-bit hash to a row number, for the
// per-workstream tables. The rows (and the keys, for equality) live in the tables' own arrays;
// the index stores only row numbers and 32 bits of each hash, probes linearly and doubles at half
// load. Rows are 32-bit: two billion rows would need hundreds of gigabytes of tables first. It
// replaces Dictionary on the per-packet path, whose SipHash over 40-byte keys dominated the
// replay's profile.

import CNetISRShim

struct RowIndex {
    /// A slot: the low 32 bits of the key's hash (enough to place it again when the index grows,
    /// and to tell most keys apart) and its row (-1: empty), in 8 bytes so the index of a large
    /// table stays cached.
    private struct Slot: BitwiseCopyable {
        var tag: UInt32
        var storedRow: Int32
        var row: Int { Int(storedRow) }
        init(hash: UInt64, row: Int) {
            tag = UInt32(truncatingIfNeeded: hash)
            storedRow = Int32(truncatingIfNeeded: row)
        }
    }

    private var slots: TableArray<Slot>
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 1_024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = TableArray(repeating: Slot(hash: 0, row: -1), count: size)
        mask = size - 1
    }

    /// The row whose key hashes to `hash` and satisfies `matches`, if any.
    @inline(__always)
    func find(_ hash: UInt64, _ matches: (Int) -> Bool) -> Int? {
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[index]
            if slot.row < 0 { return nil }
            if slot.tag == UInt32(truncatingIfNeeded: hash) && matches(slot.row) { return slot.row }
            index = (index + 1) & mask
        }
    }

    /// The first row whose slot carries `hash`'s tag, without comparing keys (for prefetching:
    /// a rare tag collision names the wrong row, which is harmless there).
    @inline(__always)
    func candidate(_ hash: UInt64) -> Int? {
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[index]
            if slot.row < 0 { return nil }
            if slot.tag == UInt32(truncatingIfNeeded: hash) { return slot.row }
            index = (index + 1) & mask
        }
    }

    /// Starts loading the slot a lookup of `hash` reads first.
    @inline(__always)
    func prefetch(_ hash: UInt64) {
        slots.withUnsafeBufferPointer { netisr_prefetch($0.baseAddress! + (Int(truncatingIfNeeded: hash) & mask)) }
    }

    /// Adds `row` under `hash`.
    mutating func insert(_ hash: UInt64, row: Int) {
        if (count + 1) * 2 > slots.count { grow() }
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index].row >= 0 { index = (index + 1) & mask }
        slots[index] = Slot(hash: hash, row: row)
        count += 1
    }

    /// Points the entry that finds `old` at `new` instead.
    mutating func replace(_ hash: UInt64, old: Int, new: Int) {
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index].row >= 0 {
            if slots[index].row == old {
                slots[index].storedRow = Int32(truncatingIfNeeded: new)
                return
            }
            index = (index + 1) & mask
        }
    }

    /// Removes the entry of `row` under `hash`, moving later entries of its probe run back so
    /// every lookup still finds its row without passing an empty slot (no tombstones).
    mutating func remove(_ hash: UInt64, row: Int) {
        var hole = Int(truncatingIfNeeded: hash) & mask
        while slots[hole].row != row {
            guard slots[hole].row >= 0 else { return }
            hole = (hole + 1) & mask
        }
        var next = (hole + 1) & mask
        while slots[next].row >= 0 {
            // An entry may fill the hole when the hole lies between its home slot and where it is.
            let home = Int(slots[next].tag) & mask
            if (next - home) & mask >= (next - hole) & mask {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = Slot(hash: 0, row: -1)
        count -= 1
    }

    /// Grows the index, if needed, so that `additional` more rows go in without growing it.
    mutating func reserve(_ additional: Int) {
        var size = slots.count
        while (count + additional) * 2 > size { size <<= 1 }
        if size > slots.count { rebuild(size: size) }
    }

    private mutating func grow() { rebuild(size: slots.count * 2) }

    private mutating func rebuild(size: Int) {
        let old = slots
        slots = TableArray(repeating: Slot(hash: 0, row: -1), count: size)
        mask = slots.count - 1
        count = 0
        for slot in old where slot.row >= 0 { insert(UInt64(slot.tag), row: slot.row) }
    }
}

/// Starts loading the first and last cache line of `rows[row]` (a hint; out of range does nothing).
@inline(__always)
func prefetch<Row>(_ rows: UnsafeBufferPointer<Row>, _ row: Int) {
    guard row >= 0, row < rows.count, let base = rows.baseAddress else { return }
    let start = UnsafeRawPointer(base + row)
    netisr_prefetch(start)
    netisr_prefetch(start + MemoryLayout<Row>.size - 1)
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
