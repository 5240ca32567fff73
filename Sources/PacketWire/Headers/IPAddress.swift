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
        var text: [UInt8] = []
        text.reserveCapacity(39)
        appendText(to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// Appends `description`'s text as UTF-8, making no String (tables of many addresses).
    public func appendText(to text: inout [UInt8]) {
        func decimal(_ value: UInt64) {
            if value >= 100 { text.append(UInt8(ascii: "0") + UInt8(value / 100)) }
            if value >= 10 { text.append(UInt8(ascii: "0") + UInt8(value / 10 % 10)) }
            text.append(UInt8(ascii: "0") + UInt8(value % 10))
        }
        func dottedQuad(_ value: UInt64) {
            decimal(value >> 24 & 0xFF)
            for shift in stride(from: UInt64(16), through: 0, by: -8) {
                text.append(UInt8(ascii: "."))
                decimal(value >> shift & 0xFF)
            }
        }
        guard isIPv6 else { return dottedQuad(low) }
        func group(_ index: Int) -> UInt16 {
            UInt16(truncatingIfNeeded: (index < 4 ? high : low) >> (48 - 16 * UInt64(index % 4)))
        }
        var bestStart = -1
        var bestLength = 0
        var index = 0
        while index < 8 {
            if group(index) == 0 {
                var length = 0
                while index + length < 8 && group(index + length) == 0 { length += 1 }
                if length > bestLength && length >= 2 {
                    bestStart = index
                    bestLength = length
                }
                index += length
            } else {
                index += 1
            }
        }
        func groups(_ range: Range<Int>) {
            for index in range {
                if index != range.lowerBound { text.append(UInt8(ascii: ":")) }
                let value = group(index)
                var started = false
                for shift in stride(from: UInt16(12), through: 0, by: -4) {
                    let nibble = UInt8(truncatingIfNeeded: value >> shift & 0xF)
                    guard started || nibble != 0 || shift == 0 else { continue }
                    started = true
                    text.append(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
                }
            }
        }
        func append(_ literal: StaticString) {
            literal.withUTF8Buffer { text.append(contentsOf: $0) }
        }
        if bestStart < 0 { return groups(0..<8) }
        if bestStart == 0 && bestLength == 6 {
            append("::")  // IPv4-compatible, as glibc's inet_ntop writes it
            return dottedQuad(low)
        }
        if bestStart == 0 && bestLength == 5 && group(5) == 0xFFFF {
            append("::ffff:")
            return dottedQuad(low)
        }
        groups(0..<bestStart)
        append("::")
        groups((bestStart + bestLength)..<8)
    }
}
