// IPAddress: an IPv4 or IPv6 address as two integers, cheap to compare, hash and order.

/// An IPv4 or IPv6 address. IPv4 lives in the low 32 bits of `low`.
public struct IPAddress: Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    /// The first 64 bits of an IPv6 address (0 for IPv4).
    public var high: UInt64
    /// The last 64 bits of an IPv6 address, or the IPv4 address.
    public var low: UInt64
    /// Whether this is an IPv6 address.
    public var isIPv6: Bool

    /// An IPv4 address from its 32-bit value.
    @inlinable public init(ipv4: UInt32) {
        high = 0
        low = UInt64(ipv4)
        isIPv6 = false
    }

    /// An IPv6 address from its two halves.
    @inlinable public init(ipv6High: UInt64, low: UInt64) {
        high = ipv6High
        self.low = low
        isIPv6 = true
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; nil if malformed.
    public init?(_ text: String) {
        if text.contains(":") {
            guard let (high, low) = Self.parseIPv6(text) else { return nil }
            self.init(ipv6High: high, low: low)
        } else {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var value: UInt32 = 0
            for part in parts {
                guard !part.isEmpty, part.count <= 3, let byte = UInt8(part) else { return nil }
                value = value << 8 | UInt32(byte)
            }
            self.init(ipv4: value)
        }
    }

    private static func parseIPv6(_ text: String) -> (UInt64, UInt64)? {
        var halves: [String] = []
        var rest = Substring(text)
        while let range = rest.firstRange(of: "::") {
            halves.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        halves.append(String(rest))
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains("."), let ipv4 = IPAddress(String(piece)), !ipv4.isIPv6 {
                    result += [UInt16(ipv4.low >> 16), UInt16(ipv4.low & 0xFFFF)]  // embedded IPv4 tail
                    continue
                }
                guard !piece.isEmpty, piece.count <= 4, let value = UInt16(piece, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        let high = all[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = all[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return (high, low)
    }

    /// Equal when family and bits are (inlinable: flow tables compare addresses per packet).
    @inlinable public static func == (lhs: IPAddress, rhs: IPAddress) -> Bool {
        lhs.low == rhs.low && lhs.high == rhs.high && lhs.isIPv6 == rhs.isIPv6
    }

    /// Orders IPv4 before IPv6, then numerically (as tshark sorts its conversation tables).
    @inlinable public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.isIPv6 ? 1 : 0, lhs.high, lhs.low) < (rhs.isIPv6 ? 1 : 0, rhs.high, rhs.low)
    }

    /// Dotted quad, or RFC 5952 IPv6 text (lower case, longest zero run compressed).
    public var description: String {
        if !isIPv6 {
            return "\(low >> 24 & 0xFF).\(low >> 16 & 0xFF).\(low >> 8 & 0xFF).\(low & 0xFF)"
        }
        let groups = (0..<8).map { index -> UInt16 in
            let word = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(index % 4)))
        }
        var bestStart = -1
        var bestLength = 0
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var length = 0
                while index + length < 8 && groups[index + length] == 0 { length += 1 }
                if length > bestLength && length >= 2 {
                    bestStart = index
                    bestLength = length
                }
                index += length
            } else {
                index += 1
            }
        }
        func hex(_ range: Range<Int>) -> String { range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        if bestStart == 0 && bestLength == 6 {
            return "::" + ipv4Tail(groups)  // IPv4-compatible, as glibc's inet_ntop writes it
        }
        if bestStart == 0 && bestLength == 5 && groups[5] == 0xFFFF {
            return "::ffff:" + ipv4Tail(groups)
        }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    private func ipv4Tail(_ groups: [UInt16]) -> String {
        "\(groups[6] >> 8).\(groups[6] & 0xFF).\(groups[7] >> 8).\(groups[7] & 0xFF)"
    }
}
