// ProtocolNumber: the slot a protocol is registered in (FreeBSD's `NETISR_IP`, `NETISR_ARP`...).

/// The number of a protocol slot, from 0 up to the engine's `maximumProtocols - 1`.
///
/// Lower numbers are served first when several protocols are pending on a workstream.
public struct ProtocolNumber: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    /// The slot number.
    public var rawValue: Int

    /// Creates a protocol number.
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Creates a protocol number.
    public init(_ rawValue: Int) { self.rawValue = rawValue }

    /// Creates a protocol number from a literal.
    public init(integerLiteral value: Int) { self.rawValue = value }

    /// Orders by slot number.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The slot number as text.
    public var description: String { String(rawValue) }
}
