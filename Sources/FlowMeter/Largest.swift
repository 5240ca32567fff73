// Largest: the first few elements of a large table in a given order, for the reports' top lists,
// without sorting the whole table. Value code, no shared state.

/// The `count` elements of `elements` that come first by `before` (a strict total order), in
/// that order, kept in a buffer of at most four times `count`: once it has been trimmed, an
/// element not before its last cannot enter the list.
func largest<Element>(
    _ count: Int, of elements: some Sequence<Element>, by before: (Element, Element) -> Bool
) -> [Element] {
    var top: [Element] = []
    guard count > 0 else { return top }
    var last: Element?
    for element in elements where last.map({ before(element, $0) }) ?? true {
        top.append(element)
        if top.count >= 4 * count {
            top.sort(by: before)
            top.removeLast(top.count - count)
            last = top[count - 1]
        }
    }
    top.sort(by: before)
    return Array(top.prefix(count))
}
