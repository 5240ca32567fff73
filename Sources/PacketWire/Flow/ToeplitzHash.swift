// ToeplitzHash: the RSS hash NICs use to spread flows over queues (Microsoft's "RSS hashing"
// specification), computed with per-byte lookup tables.
//
// The hash XORs, for every set bit i of the input (most significant bit first), the 32 key bits
// that start at bit i. Precomputing, for each input byte position and each byte value, the XOR of
// its 8 windows turns the hash into one table lookup and XOR per input byte. The input is the
// source address, destination address, then (4-tuple) source port and destination port, in
// network byte order: 12 bytes for IPv4, 36 for IPv6 with ports.

/// A Toeplitz hasher for one key.
///
/// Thread-safety: immutable; share it freely.
public struct ToeplitzHash: Sendable {
    /// Microsoft's default 40-byte RSS key (used by most NICs and DPDK).
    public static let microsoftKey: [UInt8] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
        0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
        0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ]

    /// The key.
    public let key: [UInt8]
    /// `table[position * 256 + byte]`: the contribution of `byte` at input `position`.
    @usableFromInline let table: [UInt32]
    /// The longest input the key covers (key length − 4); longer inputs ignore the excess.
    public let maximumInputLength: Int

    /// A hasher for `key` (at least 4 bytes; 40 covers IPv6 4-tuples).
    public init(key: [UInt8] = ToeplitzHash.microsoftKey) {
        precondition(key.count >= 4, "a Toeplitz key needs at least 4 bytes")
        self.key = key
        maximumInputLength = key.count - 4
        var table = [UInt32](repeating: 0, count: maximumInputLength * 256)
        for position in 0..<maximumInputLength {
            // The 32-bit windows at bits position*8 + 0…7, from 5 key bytes.
            var wide: UInt64 = 0
            for index in 0..<5 {
                let byteIndex = position + index
                wide = wide << 8 | UInt64(byteIndex < key.count ? key[byteIndex] : 0)
            }
            var windows = [UInt32](repeating: 0, count: 8)
            for bit in 0..<8 {
                windows[bit] = UInt32(truncatingIfNeeded: wide >> UInt64(8 - bit))
            }
            for value in 0..<256 {
                var result: UInt32 = 0
                for bit in 0..<8 where value & (0x80 >> bit) != 0 { result ^= windows[bit] }
                table[position * 256 + value] = result
            }
        }
        self.table = table
    }

    /// The hash of `bytes` (bytes beyond `maximumInputLength` are ignored).
    @inlinable
    public func hash(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var result: UInt32 = 0
        withTable { table in
            for position in 0..<min(bytes.count, maximumInputLength) {
                result ^= table[position &* 256 &+ Int(bytes[position])]
            }
        }
        return result
    }

    /// The hash of a byte array.
    public func hash(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { hash($0) }
    }

    @inlinable
    func withTable<R>(_ body: (UnsafeBufferPointer<UInt32>) -> R) -> R {
        table.withUnsafeBufferPointer(body)
    }

    /// The RSS hash of a flow: the 4-tuple when `includePorts`, else the 2-tuple (addresses).
    /// Mixed address families hash as if both were of the source's family.
    @inlinable
    public func hash(_ flow: FlowKey, includePorts: Bool = true) -> UInt32 {
        withTable { table in
            var result: UInt32 = 0
            var position = 0
            @inline(__always) func add(_ value: UInt64, bytes count: Int) {
                var shift = (count - 1) * 8
                for _ in 0..<count {
                    if position < maximumInputLength {
                        result ^= table[position &* 256 &+ Int(truncatingIfNeeded: value >> UInt64(shift) & 0xFF)]
                    }
                    position += 1
                    shift -= 8
                }
            }
            if flow.source.isIPv6 {
                add(flow.source.high, bytes: 8)
                add(flow.source.low, bytes: 8)
                add(flow.destination.high, bytes: 8)
                add(flow.destination.low, bytes: 8)
            } else {
                add(flow.source.low, bytes: 4)
                add(flow.destination.low, bytes: 4)
            }
            if includePorts {
                add(UInt64(flow.sourcePort), bytes: 2)
                add(UInt64(flow.destinationPort), bytes: 2)
            }
            return result
        }
    }

    /// A direction-free hash: both directions of a conversation get the same value (the hash of
    /// the flow's canonical form), so they land on the same workstream.
    @inlinable
    public func symmetricHash(_ flow: FlowKey, includePorts: Bool = true) -> UInt32 {
        if !includePorts && !flow.source.isIPv6 && !flow.destination.isIPv6 {
            return symmetricHash(
                ipv4: UInt32(truncatingIfNeeded: flow.source.low), UInt32(truncatingIfNeeded: flow.destination.low))
        }
        return hash(flow.isCanonical ? flow : flow.reversed, includePorts: includePorts)
    }

    /// The direction-free hash of an IPv4 address pair (the RSS 2-tuple a replay places every
    /// IPv4 frame by): equal to `symmetricHash(_:includePorts: false)` of a flow between them,
    /// in eight table lookups (with a key too short for eight input bytes, the general way).
    @inlinable
    public func symmetricHash(ipv4 first: UInt32, _ second: UInt32) -> UInt32 {
        let (low, high) = (min(first, second), max(first, second))
        guard maximumInputLength >= 8 else {
            return hash(
                FlowKey(source: IPAddress(ipv4: low), destination: IPAddress(ipv4: high), ipProtocol: 0),
                includePorts: false)
        }
        return ipv4Pair(low, high)
    }

    /// The direction-free hash of an IPv6 address pair: equal to
    /// `symmetricHash(_:includePorts: false)` of a flow between them, in 32 table lookups without
    /// the general path's per-byte checks (with a key too short for 32 input bytes, the general way).
    @inlinable
    public func symmetricHash(ipv6 first: IPAddress, _ second: IPAddress) -> UInt32 {
        let (low, high) = first <= second ? (first, second) : (second, first)
        guard maximumInputLength >= 32 else {
            return hash(FlowKey(source: low, destination: high, ipProtocol: 0), includePorts: false)
        }
        return withTable { table in
            @inline(__always) func word(_ value: UInt64, at position: Int) -> UInt32 {
                var result: UInt32 = 0
                for index in 0..<8 {
                    let byte = Int(truncatingIfNeeded: value >> UInt64(56 - 8 * index) & 0xFF)
                    result ^= table[(position &+ index) &* 256 &+ byte]
                }
                return result
            }
            return word(low.high, at: 0) ^ word(low.low, at: 8) ^ word(high.high, at: 16) ^ word(high.low, at: 24)
        }
    }

    /// The hash of two IPv4 addresses (8 input bytes; the key covers at least 8).
    @inlinable
    func ipv4Pair(_ first: UInt32, _ second: UInt32) -> UInt32 {
        withTable { table in
            @inline(__always) func word(_ value: UInt32, at position: Int) -> UInt32 {
                table[position &* 256 &+ Int(value >> 24)]
                    ^ table[(position &+ 1) &* 256 &+ Int(value >> 16 & 0xFF)]
                    ^ table[(position &+ 2) &* 256 &+ Int(value >> 8 & 0xFF)]
                    ^ table[(position &+ 3) &* 256 &+ Int(value & 0xFF)]
            }
            return word(first, at: 0) ^ word(second, at: 4)
        }
    }
}
