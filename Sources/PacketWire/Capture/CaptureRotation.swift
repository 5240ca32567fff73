// CaptureRotation: when a capture being written moves on to its next file, and what that file is
// called — tcpdump's `-C` (size), `-G` (seconds) and `-W` (a ring of files), dumpcap's ring buffer.
// A value type with no state of its own: `CaptureWriter` applies it before each frame.

/// When a `CaptureWriter` closes its file and starts the next one, so that a long capture is kept
/// in files of bounded size or span, and, with `files`, in bounded disk space.
///
/// Every file is complete (its own header), named after the path given with a number before its
/// extension: `capture.pcapng` becomes `capture_00001.pcapng`, `capture_00002.pcapng`, …
/// (`capture.pcap.gz`: `capture_00001.pcap.gz`). With
/// `files` the numbers go round: the file after `files` is number 1 again, written over.
public struct CaptureRotation: Sendable, Equatable {
    /// A file is never larger than this (bytes), unless a single frame is: a frame that would take
    /// it past starts the next file.
    public var maximumBytes: Int?
    /// A file spans less than this much capture time (ns): the first frame this long after the
    /// file's first starts the next file.
    public var intervalNanoseconds: UInt64?
    /// How many files the numbers go round (nil: they keep growing).
    public var files: Int?

    /// Rotation by size (bytes), by capture time (seconds), or both, over a ring of `files` files.
    public init(maximumBytes: Int? = nil, seconds: Double? = nil, files: Int? = nil) {
        self.maximumBytes = maximumBytes.map { max($0, 1) }
        intervalNanoseconds = seconds.map { seconds in
            guard seconds.isFinite, seconds > 0 else { return 1 }
            return seconds * 1e9 >= Double(UInt64.max) ? .max : max(UInt64(seconds * 1e9), 1)
        }
        self.files = files.map { max($0, 1) }
    }

    /// Whether a frame of `bytes` at `timestamp` starts the next file, the current one holding
    /// `size` bytes and having started at `started`.
    func isDue(size: Int, adding bytes: Int, timestamp: UInt64, started: UInt64) -> Bool {
        if let maximumBytes, size + bytes > maximumBytes { return true }
        if let intervalNanoseconds, timestamp >= started, timestamp - started >= intervalNanoseconds { return true }
        return false
    }

    /// The path of the `number`th file (from 1) written for `path`.
    public func path(_ path: String, file number: Int) -> String {
        let shown = files.map { (number - 1) % $0 + 1 } ?? number
        var digits = String(shown)
        if digits.count < 5 { digits = String(repeating: "0", count: 5 - digits.count) + digits }
        let nameStart = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        // Before the extension, or before the one a `.gz` follows (`capture_00001.pcap.gz`).
        let compressed = path.hasSuffix(".gz") ? path.index(path.endIndex, offsetBy: -3) : path.endIndex
        guard let dot = path[nameStart..<compressed].lastIndex(of: "."), dot > nameStart else {
            return path[..<compressed] + "_" + digits + path[compressed...]
        }
        return path[..<dot] + "_" + digits + path[dot...]
    }
}
