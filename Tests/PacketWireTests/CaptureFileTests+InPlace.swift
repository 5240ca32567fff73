// Enhanced packet blocks read in place (an interface's second block on) against what the general
// walk gives for its first: every field of every record, across interfaces, timestamp units,
// offsets, byte orders and sections, and damage right after blocks read in place.

import PacketWire
import Testing

extension CaptureFileTests {
    /// Every field of a record.
    struct Fields: Equatable, CustomStringConvertible {
        var bytes: [UInt8]
        var originalLength: Int
        var timestamp: UInt64
        var linkType: LinkType
        var interfaceID: Int
        var fileOffset: Int

        var description: String {
            "\(bytes.count) bytes (\(originalLength)) at \(timestamp) on \(interfaceID) (\(linkType)) from \(fileOffset)"
        }
    }

    func readFields(_ file: [UInt8]) -> (records: [Fields], error: CaptureError?) {
        var records: [Fields] = []
        do {
            let reader = try CaptureReader(bytes: file)
            while try reader.read(
                maximum: 4,
                {
                    records.append(
                        Fields(
                            bytes: Array($0.bytes), originalLength: $0.originalLength, timestamp: $0.timestamp,
                            linkType: $0.linkType, interfaceID: $0.interfaceID, fileOffset: $0.fileOffset))
                }) > 0
            {}
            return (records, nil)
        } catch let error as CaptureError {
            return (records, error)
        } catch {
            return (records, CaptureError(.io, at: -1, "\(error)"))
        }
    }

    /// An enhanced packet block whose original length differs from its captured one.
    func enhanced(_ interface: UInt32, timestamp: UInt64, _ data: [UInt8], original: UInt32, bigEndian: Bool)
        -> [UInt8]
    {
        let u32 = bigEndian ? Frame.be32 : Frame.le32
        return block(
            6,
            u32(interface) + u32(UInt32(timestamp >> 32)) + u32(UInt32(timestamp & 0xFFFF_FFFF))
                + u32(UInt32(data.count)) + u32(original) + data, bigEndian: bigEndian)
    }

    @Test func blocksReadInPlaceGiveEveryFieldTheGeneralWalkGives() {
        let le16 = Frame.le16
        let ethernet = Self.frames[0]
        let raw = Frame.ipv4(protocol: 17, Frame.udp())
        let resolution = { (code: UInt8) in le16(9) + le16(1) + [code, 0, 0, 0] + le16(0) + le16(0) }
        let offsetBy100s = le16(14) + le16(8) + Frame.le32(100) + Frame.le32(0) + le16(0) + le16(0)
        var file = sectionHeader(bigEndian: false)
        file += interface(1, bigEndian: false)  // 0: Ethernet, microseconds
        file += interface(228, options: resolution(9), bigEndian: false)  // 1: raw IPv4, nanoseconds
        file += interface(1, options: resolution(3), bigEndian: false)  // 2: milliseconds
        file += interface(1, options: resolution(0x80 | 10), bigEndian: false)  // 3: 2^-10 s
        file += interface(1, options: offsetBy100s, bigEndian: false)  // 4: microseconds + 100 s
        // Nanoseconds for each interface's units, computed here independently.
        let unitsToNanoseconds: [(UInt64) -> UInt64] = [
            { $0 * 1_000 }, { $0 }, { $0 * 1_000_000 }, { ($0 * 1_000_000_000) >> 10 },
            { $0 * 1_000 + 100_000_000_000 },
        ]
        var expected: [Fields] = []
        func packet(
            _ interface: Int, _ units: UInt64, nanoseconds: UInt64? = nil, original: Int? = nil, bigEndian: Bool = false
        ) {
            let data = interface == 1 && !bigEndian ? raw : ethernet
            expected.append(
                Fields(
                    bytes: data, originalLength: original ?? data.count,
                    timestamp: nanoseconds ?? (bigEndian ? units : unitsToNanoseconds[interface](units)),
                    linkType: interface == 1 && !bigEndian ? .ipv4 : .ethernet, interfaceID: interface,
                    fileOffset: file.count))
            file += enhanced(
                UInt32(interface), timestamp: units, data, original: UInt32(original ?? data.count),
                bigEndian: bigEndian)
        }
        // The first block of each interface goes through the general walk, the next in place.
        for (interface, units) in [
            1_700_000_000_123_456, 1_700_000_000_123_456_789, 1_700_000_000_123, 3_584, 7_000_001,
        ]
        .enumerated() {
            packet(interface, UInt64(units))
            packet(interface, UInt64(units) + 1)
            packet(interface, UInt64(units) + 2, original: 9_000)
        }
        // Alternating interfaces, and timestamps past what 64 bits of nanoseconds hold (the walk
        // saturates them at Int64.max): overflowing the multiplication, and above Int64.max
        // without overflowing it.
        packet(0, 5)
        packet(1, 6)
        packet(0, 7)
        packet(0, UInt64.max / 1_000 + 1, nanoseconds: UInt64(Int64.max))
        packet(0, UInt64(Int64.max) / 1_000 + 1, nanoseconds: UInt64(Int64.max))
        packet(0, 8)
        // A big-endian section: its interface 0 is new, in nanoseconds.
        file += sectionHeader(bigEndian: true)
        file += interface(1, options: Frame.be16(9) + Frame.be16(1) + [9, 0, 0, 0], bigEndian: true)
        for step in UInt64(0)..<3 { packet(0, 40 + step, bigEndian: true) }
        let (records, error) = readFields(file)
        #expect(error == nil)
        #expect(records.count == expected.count)
        for (index, (record, wanted)) in zip(records, expected).enumerated() {
            #expect(record == wanted, "record \(index)")
        }
    }

    @Test func damageRightAfterBlocksReadInPlaceIsReportedAtItsBlock() {
        let frame = Self.frames[0]
        let head = sectionHeader(bigEndian: false) + interface(1, bigEndian: false)
        let packet = enhanced(0, timestamp: 1, frame, bigEndian: false)
        let good = head + packet + packet + packet
        func damaged(at field: Int, with value: UInt32) -> [UInt8] {
            var file = good + packet
            file.replaceSubrange((good.count + field)..<(good.count + field + 4), with: Frame.le32(value))
            return file
        }
        let cases: [(String, [UInt8], CaptureError.Code)] = [
            ("trailer", damaged(at: packet.count - 4, with: 0x7F), .badBlockLength),
            ("captured length past the block", damaged(at: 20, with: UInt32(frame.count + 64)), .badBlockLength),
            ("captured length above the maximum", damaged(at: 20, with: 300_000), .recordTooLarge),
            ("undescribed interface", damaged(at: 8, with: 3), .unknownInterface),
            ("length not a multiple of 4", damaged(at: 4, with: UInt32(packet.count - 2)), .badBlockLength),
        ]
        for (name, file, code) in cases {
            let (records, error) = readFields(file)
            #expect(records.count == 3, "\(name)")
            #expect(error?.code == code && error?.offset == good.count, "\(name): \(String(describing: error))")
        }
        // Cut inside the block: the records before it, then the truncation at its start.
        let (records, error) = readFields(Array((good + packet)[0..<(good.count + 30)]))
        #expect(records.count == 3 && error?.code == .truncatedRecord && error?.offset == good.count)
    }
}
