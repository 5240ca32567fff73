// CaptureBufferProvider: memory a CaptureReader reads into (or maps files into) on behalf of a
// consumer that keeps records' bytes past the read call (see CaptureReader's top comment).

/// Lends a `CaptureReader` the memory it reads into, so that records' bytes outlive the read call
/// (a zero-copy consumer hands them on instead of copying them).
public protocol CaptureBufferProvider: AnyObject {
    /// The size of every buffer lent; at least `CaptureReader.minimumBufferSize`. A provider that
    /// maps files is asked to map only if its buffers hold a page more (a window starts at a page
    /// boundary); otherwise files are read into its buffers.
    var bufferSize: Int { get }
    /// The buffer to read into next. `retiring` (nil the first time) is the buffer the reader
    /// leaves: it writes there no more, and records delivered from it stay valid until the
    /// provider lends it again.
    func nextBuffer(retiring: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer
    /// Maps bytes of the open file `descriptor` from `offset` (a multiple of the page size),
    /// read-only in place of the next buffer, and returns them: at most `length` bytes (itself at
    /// most `bufferSize`) and at least `minimum` (a provider may end a window sooner, to lay
    /// windows out as suits it). nil when it cannot (the reader then reads the file from there on,
    /// into buffers lent by `nextBuffer(retiring:)`). `retiring` as above. The provider must keep
    /// a SIGBUS from killing the process when the file is cut short under the mapping (the reader
    /// tells the cut by the file's size).
    func nextBuffer(
        mapping descriptor: Int32, offset: Int, length: Int, minimum: Int, retiring: UnsafeMutableRawPointer?
    ) -> UnsafeRawBufferPointer?
    /// Whether `nextBuffer(mapping:…)` maps (a provider that does not need not implement it).
    var mapsFiles: Bool { get }
}

extension CaptureBufferProvider {
    /// Maps nothing: a provider that does not map files lends buffers to read into.
    public func nextBuffer(
        mapping descriptor: Int32, offset: Int, length: Int, minimum: Int, retiring: UnsafeMutableRawPointer?
    ) -> UnsafeRawBufferPointer? { nil }

    /// False: files are read into lent buffers.
    public var mapsFiles: Bool { false }
}
