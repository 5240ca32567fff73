// LinkType: the link-layer header type of captured frames (tcpdump.org's LINKTYPE_ values).

/// A link-layer header type, as pcap and pcapng files record it.
///
/// The types are inlinable constants: a replay compares every frame's link type with them, and
/// from another module a stored `static let` is a call per comparison.
@frozen
public struct LinkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The LINKTYPE_ number.
    public var rawValue: UInt32
    /// Creates a link type.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    @inlinable public static var null: LinkType { LinkType(rawValue: 0) }
    /// Ethernet II and IEEE 802.3.
    @inlinable public static var ethernet: LinkType { LinkType(rawValue: 1) }
    /// PPP (RFC 1661), with or without HDLC-like framing's address and control bytes (RFC 1662).
    @inlinable public static var ppp: LinkType { LinkType(rawValue: 9) }
    /// PPP in HDLC-like framing (RFC 1662), as Cisco and serial links capture it.
    @inlinable public static var pppHDLC: LinkType { LinkType(rawValue: 50) }
    /// Raw IP on some BSDs (DLT 12).
    @inlinable public static var rawBSD12: LinkType { LinkType(rawValue: 12) }
    /// Raw IP on some BSDs (DLT 14).
    @inlinable public static var rawBSD14: LinkType { LinkType(rawValue: 14) }
    /// Raw IPv4 or IPv6, told apart by the version nibble.
    @inlinable public static var raw: LinkType { LinkType(rawValue: 101) }
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    @inlinable public static var loop: LinkType { LinkType(rawValue: 108) }
    /// Linux cooked capture, version 1.
    @inlinable public static var linuxSLL: LinkType { LinkType(rawValue: 113) }
    /// Raw IPv4.
    @inlinable public static var ipv4: LinkType { LinkType(rawValue: 228) }
    /// Raw IPv6.
    @inlinable public static var ipv6: LinkType { LinkType(rawValue: 229) }
    /// Linux cooked capture, version 2.
    @inlinable public static var linuxSLL2: LinkType { LinkType(rawValue: 276) }

    /// Whether this library parses frames of this type.
    @inlinable public var isSupported: Bool {
        switch self {
        case .null, .ethernet, .ppp, .pppHDLC, .rawBSD12, .rawBSD14, .raw, .loop, .linuxSLL, .ipv4, .ipv6,
            .linuxSLL2:
            true
        default: false
        }
    }

    /// The type's name.
    public var description: String {
        switch self {
        case .null: "null"
        case .ethernet: "ethernet"
        case .ppp, .pppHDLC: "ppp"
        case .raw, .rawBSD12, .rawBSD14: "raw"
        case .loop: "loop"
        case .linuxSLL: "linux-sll"
        case .linuxSLL2: "linux-sll2"
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        default: "linktype-\(rawValue)"
        }
    }
}
