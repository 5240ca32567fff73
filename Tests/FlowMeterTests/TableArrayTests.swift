// TableArray, the tables' storage: elements survive every kind of growth (on the heap, from the
// heap into a mapping, and remapped), and a copy is a value, as an Array is. TableRows,
// the tables handed over: parts read as one collection. The replay through tables that large is
// checked against an independent count in ReplayTests. The layer table's indices cover every
// network × transport pair once.

import PacketWire
import Testing

@testable import FlowMeter

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
        #expect(accounts.frames(.ipv6, .tcp) == 0 && accounts.layers.reduce(0, +) == 3)
    }
}
