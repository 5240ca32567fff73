// Builds frames and capture files byte by byte for tests.

import PacketWire

enum Frame {
    static func ethernet(type: UInt16, _ payload: [UInt8], vlans: [UInt16] = [], outerType: UInt16 = 0x8100) -> [UInt8]
    {
        var frame: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        for (index, vlan) in vlans.enumerated() {
            frame += be16(index == 0 ? outerType : 0x8100) + be16(vlan)
        }
        return frame + be16(type) + payload
    }

    static func ipv4(
        protocol: UInt8, source: UInt32 = 0x0A00_0001, destination: UInt32 = 0x0A00_0002, _ payload: [UInt8],
        fragmentOffset: UInt16 = 0, moreFragments: Bool = false, totalLength: Int? = nil, headerWords: UInt8 = 5
    ) -> [UInt8] {
        let options = [UInt8](repeating: 1, count: max(0, Int(headerWords) - 5) * 4)
        let length = totalLength ?? (20 + options.count + payload.count)
        return [0x40 | headerWords, 0] + be16(UInt16(length)) + [0, 1]
            + be16(fragmentOffset | (moreFragments ? 0x2000 : 0)) + [64, `protocol`, 0, 0]
            + be32(source) + be32(destination) + options + payload
    }

    static func ipv6(next: UInt8, source: [UInt8] = v6(1), destination: [UInt8] = v6(2), _ payload: [UInt8]) -> [UInt8]
    {
        [0x60, 0, 0, 0] + be16(UInt16(payload.count)) + [next, 64] + source + destination + payload
    }

    static func v6(_ last: UInt8) -> [UInt8] { [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [last] }

    static func tcp(source: UInt16 = 40_000, destination: UInt16 = 80, flags: UInt8 = 0x02, payload: [UInt8] = [])
        -> [UInt8]
    {
        be16(source) + be16(destination) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0] + payload
    }

    static func udp(source: UInt16 = 5353, destination: UInt16 = 53, payload: [UInt8] = [1, 2, 3, 4]) -> [UInt8] {
        be16(source) + be16(destination) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func be32(_ value: UInt32) -> [UInt8] { be16(UInt16(value >> 16)) + be16(UInt16(value & 0xFFFF)) }
    static func le16(_ value: UInt16) -> [UInt8] { be16(value).reversed() }
    static func le32(_ value: UInt32) -> [UInt8] { be32(value).reversed() }

    static func parse(_ frame: [UInt8], _ linkType: LinkType = .ethernet) -> PacketSummary {
        frame.withUnsafeBytes { PacketParser.parse($0, linkType: linkType) }
    }
}

/// Reads every record of an in-memory capture: (records as (bytes, original length, ns, link type), error).
func readAll(_ bytes: [UInt8]) -> (records: [([UInt8], Int, UInt64, LinkType)], error: CaptureError?) {
    var records: [([UInt8], Int, UInt64, LinkType)] = []
    do {
        let reader = try CaptureReader(bytes: bytes)
        while try reader.read(
            maximum: 3, { records.append((Array($0.bytes), $0.originalLength, $0.timestamp, $0.linkType)) }) > 0
        {}
        return (records, nil)
    } catch let error as CaptureError {
        return (records, error)
    } catch {
        return (records, CaptureError(.io, at: -1, "\(error)"))
    }
}
