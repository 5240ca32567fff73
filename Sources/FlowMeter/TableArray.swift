// TableArray: the storage of the per-workstream tables' large arrays (flow records, conversation
// rows, index slots).
//
// A value with copy-on-write, like Array. Unlike Array, once a table outgrows
// `TableArray.mappedThreshold` bytes its elements live in a private mapping of their own, so
// growing it moves its pages (mremap) instead of copying them. Tables under 256 KiB stay on the
// heap.
//
// The mappings are not asked for transparent huge pages: a huge page is zeroed whole at its first
// touch, and a table that grows by appending keeps a partly used one at its end — a 1M-packet,
// 100k-flow replay touched 76 MB instead of 60. Where the host backs a guest's memory lazily (this
// benchmark machine after other programs ran, as in `Benchmarks/compare.sh`) every fresh megabyte
// costs about a millisecond of zeroing: without the advice 405 → 360 and 375 → 355 ms wall, 730 →
// 640 ms CPU (10 and 12 rounds after the replay peers), 402 → 390 ms back to back (15 pairs). The
// TLB misses come back (the accounting pipeline's record prefetch now waits on page walks) but
// cost less than the zeroing did (see BENCHMARKS.md, run 21).
//
// A mapped table's pages are backed ahead of its appends, 64 KiB at a time, by one
// `MADV_POPULATE_WRITE` call (`populate`), rather than by a page fault at the first write of each
// 4 KiB page: a 1M-packet, 100k-flow replay took 12,500 page faults, now 2,400 (225 → 219 ms wall,
// 370 → 350 ms CPU, 15 interleaved rounds; after the replay peers 261 → 226 ms, 430 → 370 ms CPU,
// 11 rounds). The memory touched stays what the elements need, plus at most the step.
//
// Elements are BitwiseCopyable: moved by memory copies and page moves, never deinitialized. One
// owner mutates a table at a time (its workstream's accounts); the raw memory stays in this file.

import CNetISRShim

#if canImport(Glibc)
    import Glibc
#endif

/// The system's page size, which `MADV_POPULATE_WRITE` ranges are aligned to.
private let tablePageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

struct TableArray<Element: BitwiseCopyable>: RandomAccessCollection {
    /// Tables larger than this (bytes) are mapped rather than allocated on the heap.
    static var mappedThreshold: Int { 256 << 10 }

    private var storage: Storage

    /// The size of the table's mapping in bytes; 0 while its elements are on the heap (tests).
    var mappingSize: Int { storage.mappedBytes }

    /// An empty table.
    init() { storage = Storage(minimumCapacity: 16) }

    /// A table of `count` copies of `value`.
    init(repeating value: Element, count: Int) {
        storage = Storage(minimumCapacity: count)
        storage.populate(upTo: count)
        storage.base.initialize(repeating: value, count: count)
        storage.count = count
    }

    var startIndex: Int { 0 }
    var endIndex: Int { storage.count }

    subscript(position: Int) -> Element {
        @inline(__always) get {
            checkIndex(position)
            return storage.base[position]
        }
        @inline(__always) _modify {
            checkIndex(position)
            makeUnique()
            yield &storage.base[position]
        }
    }

    /// Calls `body` with the element at `position` to read and change in place: one bounds check
    /// and one uniqueness check for every access `body` makes (a record updated through the
    /// subscript pays them at each).
    @inline(__always)
    mutating func update<Result>(_ position: Int, _ body: (inout Element) -> Result) -> Result {
        checkIndex(position)
        makeUnique()
        return body(&storage.base[position])
    }

    /// Adds `element` at the end.
    @inline(__always)
    mutating func append(_ element: Element) {
        makeUnique()
        if storage.count == storage.capacity { storage.grow(to: storage.count + 1) }
        if storage.count >= storage.populated { storage.populate(upTo: storage.count + 1) }
        (storage.base + storage.count).initialize(to: element)
        storage.count += 1
    }

    /// Drops the last element (its memory stays, for the next append).
    mutating func removeLast() {
        precondition(storage.count > 0, "removeLast on an empty table")
        makeUnique()
        storage.count -= 1
    }

    /// Calls `body` with the elements' memory (valid during the call only).
    @inline(__always)
    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
    }

    /// Traps unless `position` is an element's. One unsigned comparison covers both ends (a
    /// negative position is a huge one).
    @inline(__always)
    private func checkIndex(_ position: Int) {
        precondition(UInt(bitPattern: position) < UInt(bitPattern: storage.count), "table index out of range")
    }

    @inline(__always)
    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// The elements' memory: on the heap, or a mapping of `mappedBytes` bytes.
    private final class Storage {
        var base: UnsafeMutablePointer<Element>
        var capacity: Int
        var count = 0
        /// The mapping's size; 0 while the elements are on the heap.
        var mappedBytes = 0
        /// Elements below this are backed by memory (for a heap table, all of its capacity).
        var populated = Int.max

        /// Backs the mapping's pages holding the elements below `count`, and a step further, in
        /// one call (a heap table is backed already).
        func populate(upTo count: Int) {
            guard count > populated else { return }
            let stride = MemoryLayout<Element>.stride
            let page = tablePageSize
            let start = populated * stride / page * page
            let end = Swift.min(mappedBytes, (count * stride + (64 << 10) + page - 1) / page * page)
            if end > start { netisr_populate_writable(UnsafeMutableRawPointer(base) + start, end - start) }
            populated = end / stride
        }

        init(minimumCapacity: Int) {
            (base, capacity, mappedBytes) = Storage.allocate(minimumCapacity: Swift.max(minimumCapacity, 1))
            if mappedBytes > 0 { populated = 0 }
        }

        deinit { Storage.free(base, mappedBytes: mappedBytes) }

        func copy() -> Storage {
            let copy = Storage(minimumCapacity: capacity)
            copy.populate(upTo: count)
            copy.base.initialize(from: base, count: count)
            copy.count = count
            return copy
        }

        /// Makes room for at least `minimum` elements, doubling.
        func grow(to minimum: Int) {
            let wanted = Swift.max(minimum, capacity * 2)
            if mappedBytes > 0 {
                let bytes = Storage.mappingSize(for: wanted)
                guard let moved = netisr_remap_table(base, mappedBytes, bytes) else {
                    fatalError("out of memory growing a table to \(bytes) bytes")
                }
                (base, capacity, mappedBytes) = Storage.elements(in: moved, bytes: bytes)
                return
            }
            let (old, oldMappedBytes) = (base, mappedBytes)
            (base, capacity, mappedBytes) = Storage.allocate(minimumCapacity: wanted)
            populated = mappedBytes > 0 ? 0 : .max
            populate(upTo: count)
            base.initialize(from: old, count: count)
            Storage.free(old, mappedBytes: oldMappedBytes)
        }

        /// Whole 2 MiB units holding at least `elements` elements (address space only: pages
        /// are backed as they are touched), so a growing table is remapped rarely.
        private static func mappingSize(for elements: Int) -> Int {
            let page = 2 << 20
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
            precondition(!overflow, "a table of \(elements) elements is too large")
            return (bytes + page - 1) / page * page
        }

        private static func allocate(minimumCapacity: Int) -> (UnsafeMutablePointer<Element>, Int, Int) {
            if minimumCapacity * MemoryLayout<Element>.stride <= TableArray.mappedThreshold {
                let base = UnsafeMutablePointer<Element>.allocate(capacity: minimumCapacity)
                return (base, minimumCapacity, 0)
            }
            let bytes = mappingSize(for: minimumCapacity)
            guard let mapped = netisr_map_table(bytes) else {
                fatalError("out of memory mapping a \(bytes)-byte table")
            }
            return elements(in: mapped, bytes: bytes)
        }

        /// A mapping of `bytes` bytes as elements: its base, capacity and size.
        private static func elements(in mapping: UnsafeMutableRawPointer, bytes: Int)
            -> (UnsafeMutablePointer<Element>, Int, Int)
        {
            let capacity = bytes / MemoryLayout<Element>.stride
            return (mapping.bindMemory(to: Element.self, capacity: capacity), capacity, bytes)
        }

        private static func free(_ base: UnsafeMutablePointer<Element>, mappedBytes: Int) {
            if mappedBytes > 0 { netisr_unmap_table(base, mappedBytes) } else { base.deallocate() }
        }
    }
}

// Copy-on-write, as Array: a table shared between threads is only read; a mutation copies first.
extension TableArray: @unchecked Sendable where Element: Sendable {}
