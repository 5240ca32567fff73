// TextBuffer: report text built as UTF-8 bytes — numbers, addresses and flags appended byte by
// byte, with no String made per field — for the tables that run to 100k rows (flow records,
// conversations). Value code, no shared state.

import PacketWire

struct TextBuffer {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    /// The text so far.
    var text: String { String(decoding: bytes, as: UTF8.self) }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ byte: UInt8) { bytes.append(byte) }

    /// `value` in decimal.
    mutating func append(decimal value: some BinaryInteger) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = UInt64(value.magnitude)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for 24 digits, the most is 20
        let count = withUnsafeMutableBytes(of: &digits) { buffer in
            var count = 0
            repeat {
                buffer[buffer.count - 1 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            return count
        }
        withUnsafeBytes(of: &digits) { bytes.append(contentsOf: $0[($0.count - count)...]) }
    }

    /// An address as `IPAddress.description` writes it.
    mutating func append(_ address: IPAddress) { address.appendText(to: &bytes) }

    /// TCP flags as `ReplayReport.tcpFlags` writes them (`UAPRSF`, `.` where unset).
    mutating func append(tcpFlags flags: UInt8) {
        for (mask, letter) in ReplayReport.flagLetters {
            bytes.append(flags & mask != 0 ? letter : UInt8(ascii: "."))
        }
    }
}
