// UnretainedArray: a fixed list of objects the packet path reads without reference counting.
//
// Reading a class reference out of a Swift array retains it, and releases it after the use; on
// the packet path that is two atomic read-modify-writes per packet. This type keeps the strong
// references (so the objects live as long as it does) and hands them out as guaranteed
// references inside a closure, which the compiler uses without retaining.

final class UnretainedArray<Element: AnyObject>: @unchecked Sendable {  // unchecked: immutable after init
    private let strong: [Element]
    private let references: UnsafeMutablePointer<Unmanaged<Element>>
    let count: Int

    init(_ elements: [Element]) {
        strong = elements
        count = elements.count
        references = .allocate(capacity: max(1, elements.count))
        for (index, element) in elements.enumerated() {
            (references + index).initialize(to: .passUnretained(element))
        }
    }

    deinit {
        references.deallocate()
    }

    /// The elements, retained (for control paths).
    var elements: [Element] { strong }

    /// Runs `body` with element `index`, not retained.
    @inline(__always)
    func with<Result>(_ index: Int, _ body: (Element) throws -> Result) rethrows -> Result {
        try references[index]._withUnsafeGuaranteedRef(body)
    }
}
