// TableRows: a table's rows as a replay hands them over — each workstream's part, one after
// another, read as one collection. Handing over the parts copies nothing: copying them into one
// new array took 20–28 ms at the end of a 100k-flow replay here, mostly page faults on the copy's
// fresh memory, while the other CPU sat idle.
//
// The parts are never mutated again once handed over, so copies of a TableRows share them.

/// The rows of one table, kept in parts (one per workstream), read in order as one collection.
///
/// A value: copying it copies no rows. Safe to read from any thread.
public struct TableRows<Element: BitwiseCopyable & Sendable>: RandomAccessCollection, Sendable {
    private let parts: [TableArray<Element>]
    /// Where each part ends in the joined numbering.
    private let ends: [Int]

    /// The parts' rows, part after part (empty parts are left out).
    init(parts: [TableArray<Element>]) {
        self.parts = parts.filter { !$0.isEmpty }
        var total = 0
        ends = self.parts.map {
            total += $0.count
            return total
        }
    }

    /// The first row's position: 0.
    public var startIndex: Int { 0 }
    /// The number of rows.
    public var endIndex: Int { ends.last ?? 0 }

    /// The row at `position` (0 ..< count).
    public subscript(position: Int) -> Element {
        precondition(position >= 0 && position < endIndex, "row index out of range")
        var part = 0
        while position >= ends[part] { part += 1 }
        return parts[part][part == 0 ? position : position - ends[part - 1]]
    }

    /// Iterates part after part, without looking up each position's part.
    public struct Iterator: IteratorProtocol {
        private let parts: [TableArray<Element>]
        private var part = 0
        private var position = 0

        fileprivate init(parts: [TableArray<Element>]) { self.parts = parts }

        /// The next row, or nil after the last.
        public mutating func next() -> Element? {
            while part < parts.count {
                if position < parts[part].count {
                    defer { position += 1 }
                    return parts[part][position]
                }
                part += 1
                position = 0
            }
            return nil
        }
    }

    /// An iterator over the rows in order.
    public func makeIterator() -> Iterator { Iterator(parts: parts) }
}

extension TableRows: ExpressibleByArrayLiteral {
    /// Rows written out (an empty table, usually: `[]`).
    public init(arrayLiteral elements: Element...) {
        var part = TableArray<Element>()
        for element in elements { part.append(element) }
        self.init(parts: [part])
    }
}
