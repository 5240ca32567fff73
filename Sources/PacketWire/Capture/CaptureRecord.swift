// CaptureRecord: one frame as a capture file recorded it — a view of its bytes plus metadata.

/// One captured frame. `bytes` is a view into the reader's buffer, valid only during the callback
/// that receives it; copy what must outlive it.
public struct CaptureRecord: @unchecked Sendable {  // unchecked: a view, valid during one callback
    /// The captured bytes (at most the snapshot length).
    public let bytes: UnsafeRawBufferPointer
    /// The frame's length on the wire.
    public let originalLength: Int
    /// Capture time in nanoseconds since the Unix epoch.
    public let timestamp: UInt64
    /// The link-layer header type.
    public let linkType: LinkType
    /// The pcapng interface (0 for pcap).
    public let interfaceID: Int
    /// Byte offset of the record (or block) in the file.
    public let fileOffset: Int
}

/// The kind of capture file, detected from its first bytes.
public enum CaptureFormat: Sendable, Equatable {
    /// Classic pcap: byte order, and nanosecond or microsecond timestamps.
    case pcap(bigEndian: Bool, nanosecond: Bool)
    /// pcapng (the byte order is per section).
    case pcapng
}
