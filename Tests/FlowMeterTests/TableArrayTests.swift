// TableArray, the tables' storage: elements survive every kind of growth (on the heap, from the
// heap into a mapping, and remapped), and a copy is a value, as an Array is (through an update in
// place too). TableRows, the tables handed over: parts read as one collection. The replay through
// tables that large is checked against an independent count in ReplayTests. The layer table's
// indices cover every network × transport pair once. A mapped table's pages are backed a step
// ahead of its appends.

import PacketWire
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct TableArrayTests {
    /// Elements of 40 bytes: 2 MiB (the mapped threshold) holds 52,428 of them.
    struct Element: BitwiseCopyable, Equatable {
        var a: Int
        var b: Int
        var c: Int
        var d: Int
        var e: Int32
        init(_ value: Int) { (a, b, c, d, e) = (value, ~value, value &* 31, -value, Int32(truncatingIfNeeded: value)) }
    }

    @Test func appendedElementsSurviveEveryGrowth() {
        var table = TableArray<Element>()
        var expected: [Element] = []
        let count = 400_000  // 16 MB: heap, then mapped, then remapped three times
        #expect(count * MemoryLayout<Element>.stride > 4 * TableArray<Element>.mappedThreshold)
        for value in 0..<count {
            table.append(Element(value))
            expected.append(Element(value))
            if value % 50_000 == 0 { table[value / 2].a += 1 }
            if value % 50_000 == 0 { expected[value / 2].a += 1 }
        }
        #expect(table.count == count)
        #expect(Array(table) == expected)
        table.withUnsafeBufferPointer { buffer in #expect(Array(buffer) == expected) }
        // An update in place changes that element only, and not a copy taken before it.
        let copy = table
        let before = table.update(count - 1) { element -> Int in
            defer { element.b = 7 }
            return element.b
        }
        #expect(before == expected[count - 1].b && table[count - 1].b == 7)
        #expect(copy[count - 1] == expected[count - 1] && table[count - 2] == expected[count - 2])
    }

    /// A mapped table's pages are backed ahead of its appends, a step (64 KiB) at a time, and no
    /// further: every element's page is resident, and beyond the last one, pages not yet written
    /// are — at most a step's worth.
    @Test func mappedPagesAreBackedAheadOfAppendsByAStep() throws {
        var table = TableArray<Element>()
        for value in 0..<100_000 { table.append(Element(value)) }  // 4 MB: mapped
        let size = table.mappingSize
        try #require(size > 0)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let hugePagesAlways = Self.transparentHugePagesAlways
        var mostAhead = 0
        for _ in 0..<40 {  // 40 pages of appends: across at least two steps of 4 KiB pages
            for _ in 0..<(page / MemoryLayout<Element>.stride) { table.append(Element(table.count)) }
            try #require(table.mappingSize == size)
            var residency = [UInt8](repeating: 0, count: size / page)
            let status = table.withUnsafeBufferPointer { buffer in
                residency.withUnsafeMutableBufferPointer {
                    mincore(UnsafeMutableRawPointer(mutating: buffer.baseAddress!), size, $0.baseAddress)
                }
            }
            try #require(status == 0)
            let used = (table.count * MemoryLayout<Element>.stride + page - 1) / page
            #expect(residency[..<used].allSatisfy { $0 & 1 == 1 })
            let ahead = residency[used...].reduce(0) { $0 + Int($1 & 1) }
            if !hugePagesAlways { #expect(ahead <= (64 << 10) / page) }
            mostAhead = max(mostAhead, ahead)
        }
        #expect(mostAhead >= max(1, (64 << 10) / page / 2))
    }

    /// Whether the kernel gives every anonymous mapping huge pages (a touched page then backs 2 MiB).
    static var transparentHugePagesAlways: Bool {
        let descriptor = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 128)
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        return String(decoding: bytes.prefix(max(count, 0)), as: UTF8.self).contains("[always]")
    }

    @Test(arguments: [1_000, 200_000])
    func aCopyIsAValue(count: Int) {
        var original = TableArray(repeating: Element(7), count: count)
        let copy = original
        original[count - 1] = Element(8)
        original.append(Element(9))
        #expect(copy.count == count && copy.allSatisfy { $0 == Element(7) })
        #expect(original.count == count + 1 && original[count - 1] == Element(8) && original[count] == Element(9))
        var second = copy
        second.append(Element(10))
        #expect(copy.count == count && second.count == count + 1 && second[count] == Element(10))
    }

    @Test func partsReadAsOneCollection() {
        let sizes = [3, 0, 70_000, 1, 0, 5]  // empty parts, one past the mapped threshold
        var parts: [TableArray<Element>] = []
        var expected: [Element] = []
        for size in sizes {
            var part = TableArray<Element>()
            for _ in 0..<size {
                part.append(Element(expected.count))
                expected.append(Element(expected.count))
            }
            parts.append(part)
        }
        let rows = TableRows(parts: parts)
        #expect(rows.count == expected.count)
        #expect(Array(rows) == expected)  // the iterator, part after part
        #expect(rows.indices.allSatisfy { rows[$0] == expected[$0] })  // the subscript, each position's part
        #expect(rows.reversed().elementsEqual(expected.reversed()))
        #expect(TableRows<Element>(parts: []).isEmpty && Array(TableRows(parts: [TableArray<Element>()])) == [])
        let literal: TableRows<Element> = [Element(1), Element(2)]
        #expect(Array(literal) == [Element(1), Element(2)])
    }

    @Test func layerIndicesCoverEveryProtocolPairOnce() {
        #expect(TrafficAccounts.transportKinds == TransportProtocol.allCases.count)
        var slots = Set<Int>()
        for network in NetworkProtocol.allCases {
            for transport in TransportProtocol.allCases {
                slots.insert(
                    TrafficAccounts.index(network) * TrafficAccounts.transportKinds + TrafficAccounts.index(transport))
            }
        }
        #expect(slots == Set(0..<NetworkProtocol.allCases.count * TransportProtocol.allCases.count))
        var accounts = TrafficAccounts()
        accounts.countLayers(.ipv6, .udp)
        accounts.countLayers(.ipv6, .udp)
        accounts.countLayers(.arp, .none)
        #expect(accounts.frames(.ipv6, .udp) == 2 && accounts.frames(.arp, .none) == 1)
        #expect(accounts.layers.count == NetworkProtocol.allCases.count * TrafficAccounts.transportKinds)
        #expect(
            accounts.frames(.ipv6, .tcp) == 0 && accounts.layers.indices.reduce(0) { $0 + accounts.layers[$1] } == 3)
    }
}
