// FlowKey: the 5-tuple that identifies a flow, and its direction-free form.

/// Addresses, IP protocol and ports of a flow (ports are 0 when absent: not TCP/UDP, or a
/// non-first fragment).
public struct FlowKey: Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    /// Source address.
    public var source: IPAddress
    /// Destination address.
    public var destination: IPAddress
    /// Source port, or 0.
    public var sourcePort: UInt16
    /// Destination port, or 0.
    public var destinationPort: UInt16
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, …).
    public var ipProtocol: UInt8

    /// Creates a key.
    @inlinable public init(
        source: IPAddress, destination: IPAddress, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0,
        ipProtocol: UInt8
    ) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ipProtocol = ipProtocol
    }

    /// Whether source (address, port) orders before destination: the canonical direction.
    @inlinable public var isCanonical: Bool {
        (source, sourcePort) <= (destination, destinationPort)
    }

    /// The same flow with its endpoints in canonical order, so both directions of a conversation
    /// give one key.
    @inlinable public var canonical: FlowKey {
        isCanonical
            ? self
            : FlowKey(
                source: destination, destination: source, sourcePort: destinationPort, destinationPort: sourcePort,
                ipProtocol: ipProtocol)
    }

    /// The key with source and destination swapped.
    @inlinable public var reversed: FlowKey {
        FlowKey(
            source: destination, destination: source, sourcePort: destinationPort, destinationPort: sourcePort,
            ipProtocol: ipProtocol)
    }

    /// Equal when every field is (inlinable: flow tables compare keys per packet).
    @inlinable public static func == (lhs: FlowKey, rhs: FlowKey) -> Bool {
        lhs.source == rhs.source && lhs.destination == rhs.destination && lhs.sourcePort == rhs.sourcePort
            && lhs.destinationPort == rhs.destinationPort && lhs.ipProtocol == rhs.ipProtocol
    }

    /// `src:port > dst:port proto N`.
    public var description: String {
        func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
            address.isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)"
        }
        return "\(endpoint(source, sourcePort)) > \(endpoint(destination, destinationPort)) proto \(ipProtocol)"
    }
}
