// ReplayFilter: a replay's read filter (`netisr replay --filter EXPRESSION`). Frames that do not
// match are counted and never offered to the engine, as `tcpdump -r FILE EXPRESSION` skips them;
// the report gives their number beside the expression. The expression is compiled once per link
// type met (a pcapng file may mix them). Used by the reader thread only.

import PacketWire

struct ReplayFilter {
    /// The expression, in tcpdump's syntax.
    let expression: String
    /// Frames that did not match (or whose link type the expression could not be compiled for).
    private(set) var filtered = 0
    private var programs: [UInt32: PacketFilter] = [:]
    /// The program of the link type seen last (most captures have one).
    private var last: (linkType: UInt32, program: PacketFilter)?
    /// Link types the expression does not compile for, and why; reported once per file.
    private var failures: [UInt32: PacketFilterError] = [:]
    private var unreported: (LinkType, PacketFilterError)?

    init(_ expression: String) { self.expression = expression }

    /// Whether `record` passes; counts it when it does not.
    @inline(__always)
    mutating func keeps(_ record: CaptureRecord) -> Bool {
        let linkType = record.linkType.rawValue
        let program: PacketFilter
        if let last, last.linkType == linkType {
            program = last.program
        } else if let compiled = compiled(for: record.linkType) {
            program = compiled
            last = (linkType, compiled)
        } else {
            filtered += 1
            return false
        }
        if program.matches(record.bytes, wireLength: record.originalLength) { return true }
        filtered += 1
        return false
    }

    private mutating func compiled(for linkType: LinkType) -> PacketFilter? {
        if let program = programs[linkType.rawValue] { return program }
        if let failure = failures[linkType.rawValue] {
            if unreported == nil { unreported = (linkType, failure) }
            return nil
        }
        do {
            let program = try PacketFilter(expression, linkType: linkType)
            programs[linkType.rawValue] = program
            return program
        } catch {
            failures[linkType.rawValue] = error
            unreported = (linkType, error)
            return nil
        }
    }

    /// The error for frames of a link type the expression does not compile for, once per file.
    mutating func takeFailure() -> CaptureError? {
        defer { unreported = nil }
        return unreported.map { linkType, error in
            CaptureError(
                .io, at: 0, "the filter does not apply to link type \(linkType) (its frames were skipped): \(error)")
        }
    }
}
