// FlowRecordWriter: a flow-record file written as records come — batch after batch, as a live
// capture's sweeps end them — rather than all at once: CSV (one header, then a line per record),
// JSON (one array, its elements appended) or IPFIX (RFC 5655: the templates in the first message).
// The file holds, batch for batch, what ReplayReport.flowsCSV/flowsJSON or an IPFIX encoding of
// all the records would. One owner writes at a time (the live export's sender, under its lock).

#if canImport(Glibc)
    import Glibc
#endif

/// Writes flow records to a file in batches, in the format its name asks for.
///
/// ```swift
/// var file = try FlowRecordWriter(path: "flows.csv")
/// try file.write(someRecords)
/// try file.write(moreRecords)
/// try file.finish()
/// ```
public struct FlowRecordWriter: ~Copyable, Sendable {
    /// A file format for flow records.
    public enum Format: Sendable, Equatable {
        /// One header line, then a line per record (`ReplayReport.flowsCSV`'s columns).
        case csv
        /// One JSON array of records (`ReplayReport.flowsJSON`'s objects).
        case json
        /// IPFIX messages (RFC 5655), the templates in the first.
        case ipfix

        /// `.json` for a name ending in .json, `.ipfix` for .ipfix, else CSV.
        public init(path: String) {
            self = path.hasSuffix(".json") ? .json : path.hasSuffix(".ipfix") ? .ipfix : .csv
        }
    }

    /// A write that failed: the file's name and the system's reason.
    public struct WriteError: Error, Sendable, CustomStringConvertible {
        /// What failed, as one line.
        public var description: String
    }

    /// The file as given ("-": standard output, as CSV).
    public let path: String
    /// Its format.
    public let format: Format
    /// Records written so far.
    public private(set) var recordsWritten = 0
    private var descriptor: Int32
    private var encoder = IPFIXEncoder(templates: .firstMessage)

    /// Creates (or truncates) the file at `path`; "-" writes CSV to standard output.
    public init(path: String) throws(WriteError) {
        self.path = path
        format = path == "-" ? .csv : Format(path: path)
        descriptor = path == "-" ? dup(1) : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Self.failure(path) }
        switch format {
        case .csv: try put(Array(ReplayReport.flowsCSVHeader.utf8))
        case .json: try put(Array("[".utf8))
        case .ipfix: break
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Appends `records`, in this order.
    public mutating func write(_ records: [FlowRecord]) throws(WriteError) {
        guard !records.isEmpty else { return }
        switch format {
        case .csv, .json:
            var text = TextBuffer(capacity: records.count * 280)
            if format == .csv {
                ReplayReport.appendCSV(records, to: &text)
            } else {
                ReplayReport.appendJSON(records, to: &text, first: recordsWritten == 0)
            }
            try put(text.bytes)
        case .ipfix:
            var messages: [[UInt8]] = []
            encoder.encode(records, exportTime: UInt32(clamping: time(nil))) { message, _ in messages.append(message) }
            for message in messages { try put(message) }
        }
        recordsWritten += records.count
    }

    /// Ends the file (a JSON array's closing bracket) and closes it.
    public consuming func finish() throws(WriteError) {
        if format == .json { try put(Array("]\n".utf8)) }
        let status = close(descriptor)
        descriptor = -1
        guard status == 0 else { throw Self.failure(path) }
    }

    private func put(_ bytes: [UInt8]) throws(WriteError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw Self.failure(path) }
            offset += written
        }
    }

    private static func failure(_ path: String) -> WriteError {
        WriteError(
            description: "cannot write \(path == "-" ? "standard output" : path): \(String(cString: strerror(errno)))")
    }
}
