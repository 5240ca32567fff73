// CaptureError: why a capture file could not be read further, and where.

/// A capture file is malformed, or cannot be opened or read. Records before the damage have
/// been delivered; `offset` is the byte offset of the damaged structure in the file.
public struct CaptureError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case unknownFormat, truncatedHeader, truncatedRecord, recordTooLarge, badBlockLength, unexpectedBlock,
                unknownInterface, badByteOrderMagic, damagedCompression, io
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The first bytes are neither a pcap nor a pcapng magic number.
        public static let unknownFormat = Code(.unknownFormat)
        /// The file ends inside its file or section header.
        public static let truncatedHeader = Code(.truncatedHeader)
        /// The file ends inside a record or block.
        public static let truncatedRecord = Code(.truncatedRecord)
        /// A record's captured length is above the snapshot length or above 262,144 bytes.
        public static let recordTooLarge = Code(.recordTooLarge)
        /// A pcapng block length is too small, not a multiple of 4, or differs from its trailer.
        public static let badBlockLength = Code(.badBlockLength)
        /// A block appears where it may not (a packet before any interface, …).
        public static let unexpectedBlock = Code(.unexpectedBlock)
        /// A packet names an interface that was not described.
        public static let unknownInterface = Code(.unknownInterface)
        /// A pcapng section header has an unknown byte-order magic.
        public static let badByteOrderMagic = Code(.badByteOrderMagic)
        /// A gzip-compressed file's data is damaged: invalid DEFLATE data, or a CRC-32 or length
        /// that does not match (the offset is in the compressed file).
        public static let damagedCompression = Code(.damagedCompression)
        /// The file could not be opened or read.
        public static let io = Code(.io)

        /// The code's name.
        public var description: String { "\(value)" }
    }

    /// The kind of failure.
    public let code: Code
    /// Byte offset in the file of the structure that failed.
    public let offset: Int
    /// What went wrong, for people.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, at offset: Int, _ message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    /// The message with its offset.
    public var description: String { "\(message) (at byte offset \(offset))" }
}
