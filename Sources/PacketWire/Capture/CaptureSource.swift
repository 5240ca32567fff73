// CaptureSource: where a reader's bytes come from — a file read in large chunks, or memory.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A forward-only byte stream.
protocol CaptureSource: AnyObject {
    /// Copies up to `count` bytes into `destination`; 0 at the end. Throws on an I/O error.
    func read(into destination: UnsafeMutableRawPointer, count: Int) throws(CaptureError) -> Int
    /// The total size, when known.
    var size: Int? { get }
    /// How far through the underlying file a transforming source (decompression) is — its bytes
    /// consumed, of its size when known; nil for a source whose bytes are the file's.
    var fileProgress: (read: Int, total: Int?)? { get }
    /// The descriptor of a regular file whose bytes are the capture's, which a reader may map
    /// instead of reading; nil otherwise.
    var mappableDescriptor: Int32? { get }
    /// Makes the next read start at `offset` of a file mapped until now; false if it cannot.
    func continueReading(at offset: Int) -> Bool
}

extension CaptureSource {
    var fileProgress: (read: Int, total: Int?)? { nil }
    var mappableDescriptor: Int32? { nil }
    func continueReading(at offset: Int) -> Bool { false }
}

/// Opens `path` (`-`: standard input) as a capture's bytes: as they are, or decompressed when they
/// are gzip data (`GzipCaptureSource`), told apart by the first two bytes.
func openCaptureSource(path: String) throws(CaptureError) -> any CaptureSource {
    let file = try FileCaptureSource(path: path)
    var head: [UInt8] = []
    var byte: UInt8 = 0
    while head.count < 2, try file.read(into: &byte, count: 1) == 1 { head.append(byte) }
    guard GzipCaptureSource.isGzip(head) else {
        file.unread(head)
        return file
    }
    return GzipCaptureSource(file, prefix: head)
}

/// A file read with `read(2)`: a regular file (which a reader may map instead), a pipe, or
/// standard input (`-`).
final class FileCaptureSource: CaptureSource {
    private let descriptor: Int32
    let size: Int?
    let path: String
    /// Bytes read ahead (to see the format) and given back, returned first.
    private var returned: [UInt8] = []

    /// Opens `path`; `-` reads standard input (through a duplicate of its descriptor, so closing
    /// the source leaves the process's standard input open).
    init(path: String) throws(CaptureError) {
        self.path = path
        descriptor = path == "-" ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0) : open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw CaptureError(.io, at: 0, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var status = stat()
        size = fstat(descriptor, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG ? Int(status.st_size) : nil
        _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
    }

    deinit { close(descriptor) }

    /// A named regular file with bytes (standard input may start past its file's beginning; a
    /// file that says it is empty, as those of /proc do, may still have bytes to read).
    var mappableDescriptor: Int32? { path != "-" && (size ?? 0) > 0 ? descriptor : nil }

    func continueReading(at offset: Int) -> Bool {
        returned = []
        return lseek(descriptor, off_t(offset), SEEK_SET) == off_t(offset)
    }

    /// Gives `bytes`, the last read, back: the next reads return them first.
    func unread(_ bytes: [UInt8]) { returned = bytes + returned }

    func read(into destination: UnsafeMutableRawPointer, count: Int) throws(CaptureError) -> Int {
        if !returned.isEmpty {
            let n = min(count, returned.count)
            returned.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: n) }
            returned.removeFirst(n)
            return n
        }
        while true {
            let got = Glibc.read(descriptor, destination, count)
            if got >= 0 { return got }
            if errno == EINTR { continue }
            throw CaptureError(.io, at: 0, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Bytes already in memory (tests, fuzzing).
final class MemoryCaptureSource: CaptureSource {
    private let storage: [UInt8]
    private var position = 0
    var size: Int? { storage.count }

    init(_ bytes: [UInt8]) { storage = bytes }

    func read(into destination: UnsafeMutableRawPointer, count: Int) throws(CaptureError) -> Int {
        let n = min(count, storage.count - position)
        if n > 0 {
            storage.withUnsafeBytes { source in
                destination.copyMemory(from: source.baseAddress! + position, byteCount: n)
            }
            position += n
        }
        return n
    }
}
