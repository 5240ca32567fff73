// PacketSummary: what one parse of a frame found — the first network and transport protocols
// (as tshark's dissectors would name them), the flow key, VLAN and TCP flags, and every
// network/transport header that a conversation table would count.

/// The first network-layer protocol of a frame, in the oracle's names.
///
/// `none` means tshark found no protocol at all above the frame: a raw-IP link type whose first
/// byte is not a valid IP version, so the IP dissector rejected the frame.
public enum NetworkProtocol: String, Sendable, CaseIterable, Comparable {
    case arp, ipv4, ipv6, none, other
    /// Orders by name, as the reference tables sort.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The first transport-layer protocol after the network layer, in the oracle's names.
public enum TransportProtocol: String, Sendable, CaseIterable, Comparable {
    case icmp, icmpv6, none, tcp, udp
    /// Orders by name, as the reference tables sort.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One header a conversation table counts: an IPv4 or IPv6 header that tshark's tap would see,
/// or a complete TCP or UDP header (with the addresses of the IP header it rides in).
public struct ConversationEvent: Sendable, Equatable {
    /// Which table.
    public enum Kind: UInt8, Sendable { case ipv4, ipv6, tcp, udp }
    /// Which table.
    public var kind: Kind
    /// Source address.
    public var source: IPAddress
    /// Destination address.
    public var destination: IPAddress
    /// Source port (0 for IP events).
    public var sourcePort: UInt16
    /// Destination port (0 for IP events).
    public var destinationPort: UInt16
    /// TCP flags (TCP events only).
    public var tcpFlags: UInt8
}

/// The result of parsing one frame.
public struct PacketSummary: Sendable {
    /// The first of ARP, IPv4, IPv6 (else other).
    public var network: NetworkProtocol = .other
    /// The first of TCP, UDP, ICMP, ICMPv6 after it (else none).
    public var transport: TransportProtocol = .none
    /// The flow: the outermost sane IP header's addresses and protocol, with ports from a complete
    /// TCP or UDP header right inside it (none for non-first fragments); nil without IP.
    public var flow: FlowKey?
    /// The outermost VLAN id, if tagged.
    public var vlan: UInt16?
    /// The flow's TCP flags, when its transport is TCP.
    public var tcpFlags: UInt8 = 0
    /// The flow's ICMP or ICMPv6 message type (high byte) and code (low byte), when its transport
    /// is ICMP or ICMPv6 and both bytes were captured.
    public var icmpTypeCode: UInt16?
    /// Headers a conversation table counts, in the order they occur (at most 4 are kept).
    public var events: ConversationEvents = ConversationEvents()

    /// Creates an empty summary.
    public init() {}

    /// Empties the summary in place: the same as assigning `PacketSummary()`, without rewriting
    /// the events' storage (a parse per frame would otherwise write all 300 bytes).
    @inline(__always)
    mutating func reset() {
        network = .other
        transport = .none
        flow = nil
        vlan = nil
        tcpFlags = 0
        icmpTypeCode = nil
        events.removeAll()
    }
}

/// A small inline list of conversation events (no allocation per packet).
public struct ConversationEvents: Sendable, RandomAccessCollection {
    /// The most events kept per frame; deeper tunnels are not counted beyond this.
    public static let capacity = 4
    private static let empty = ConversationEvent(
        kind: .ipv4, source: IPAddress(ipv4: 0), destination: IPAddress(ipv4: 0), sourcePort: 0, destinationPort: 0,
        tcpFlags: 0)
    private var storage: (ConversationEvent, ConversationEvent, ConversationEvent, ConversationEvent) = (
        empty, empty, empty, empty
    )
    /// How many events there are.
    public private(set) var count = 0

    /// Creates an empty list.
    public init() {}

    @inline(__always)
    mutating func append(_ event: ConversationEvent) {
        switch count {
        case 0: storage.0 = event
        case 1: storage.1 = event
        case 2: storage.2 = event
        case 3: storage.3 = event
        default: return
        }
        count += 1
    }

    /// Forgets every event (their storage is only read below `count`).
    @inline(__always)
    mutating func removeAll() { count = 0 }

    /// The event at `index`.
    public subscript(index: Int) -> ConversationEvent {
        precondition(index >= 0 && index < count, "event index out of range")
        switch index {
        case 0: return storage.0
        case 1: return storage.1
        case 2: return storage.2
        default: return storage.3
        }
    }

    /// The first index.
    public var startIndex: Int { 0 }
    /// One past the last index.
    public var endIndex: Int { count }
}
