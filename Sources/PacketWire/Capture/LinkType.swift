// LinkType: the link-layer header type of captured frames (tcpdump.org's LINKTYPE_ values).

/// A link-layer header type, as pcap and pcapng files record it.
public struct LinkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The LINKTYPE_ number.
    public var rawValue: UInt32
    /// Creates a link type.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    public static let null = LinkType(rawValue: 0)
    /// Ethernet II and IEEE 802.3.
    public static let ethernet = LinkType(rawValue: 1)
    /// PPP (RFC 1661), with or without HDLC-like framing's address and control bytes (RFC 1662).
    public static let ppp = LinkType(rawValue: 9)
    /// PPP in HDLC-like framing (RFC 1662), as Cisco and serial links capture it.
    public static let pppHDLC = LinkType(rawValue: 50)
    /// Raw IP on some BSDs (DLT 12).
    public static let rawBSD12 = LinkType(rawValue: 12)
    /// Raw IP on some BSDs (DLT 14).
    public static let rawBSD14 = LinkType(rawValue: 14)
    /// Raw IPv4 or IPv6, told apart by the version nibble.
    public static let raw = LinkType(rawValue: 101)
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    public static let loop = LinkType(rawValue: 108)
    /// Linux cooked capture, version 1.
    public static let linuxSLL = LinkType(rawValue: 113)
    /// Raw IPv4.
    public static let ipv4 = LinkType(rawValue: 228)
    /// Raw IPv6.
    public static let ipv6 = LinkType(rawValue: 229)
    /// Linux cooked capture, version 2.
    public static let linuxSLL2 = LinkType(rawValue: 276)

    /// Whether this library parses frames of this type.
    public var isSupported: Bool {
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
