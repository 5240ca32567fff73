// ByteView: bounds-checked reads from untrusted bytes. Every accessor returns nil when the read
// would leave the buffer, so header parsing never traps on a short or hostile packet. The view
// does not own its memory: it is valid as long as the bytes it was made from.

/// A read-only window on packet or file bytes with bounds-checked accessors.
/// (`@unchecked Sendable`: a read-only view; its owner keeps the bytes alive and unchanged.)
public struct ByteView: @unchecked Sendable {
    /// The bytes.
    public let bytes: UnsafeRawBufferPointer

    /// A view over `bytes`.
    @inlinable public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// The number of bytes.
    @inlinable public var count: Int { bytes.count }

    /// The byte at `offset`, or nil.
    @inlinable public func u8(_ offset: Int) -> UInt8? {
        offset >= 0 && offset < bytes.count ? bytes[offset] : nil
    }

    /// A big-endian 16-bit value at `offset`, or nil.
    @inlinable public func u16(_ offset: Int) -> UInt16? {
        guard offset >= 0, offset <= bytes.count - 2 else { return nil }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    /// A big-endian 32-bit value at `offset`, or nil.
    @inlinable public func u32(_ offset: Int) -> UInt32? {
        guard offset >= 0, offset <= bytes.count - 4 else { return nil }
        return UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// A little-endian 16-bit value at `offset`, or nil.
    @inlinable public func u16le(_ offset: Int) -> UInt16? {
        guard offset >= 0, offset <= bytes.count - 2 else { return nil }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// A little-endian 32-bit value at `offset`, or nil.
    @inlinable public func u32le(_ offset: Int) -> UInt32? {
        guard offset >= 0, offset <= bytes.count - 4 else { return nil }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// A 32-bit value at `offset` in the given byte order, or nil.
    @inlinable public func u32(_ offset: Int, bigEndian: Bool) -> UInt32? {
        bigEndian ? u32(offset) : u32le(offset)
    }

    /// A 16-bit value at `offset` in the given byte order, or nil.
    @inlinable public func u16(_ offset: Int, bigEndian: Bool) -> UInt16? {
        bigEndian ? u16(offset) : u16le(offset)
    }

    /// The bytes from `offset` to the end (empty when `offset` is past it).
    @inlinable public func suffix(from offset: Int) -> ByteView {
        guard offset < bytes.count else { return ByteView(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return ByteView(UnsafeRawBufferPointer(rebasing: bytes[max(0, offset)...]))
    }

    /// The first `length` bytes (all of them if there are fewer).
    @inlinable public func prefix(_ length: Int) -> ByteView {
        ByteView(UnsafeRawBufferPointer(rebasing: bytes[..<min(max(0, length), bytes.count)]))
    }
}
