// PcapngSection: the state of one pcapng section — its byte order, interfaces and what their
// statistics blocks say was dropped — and the decoding of its packet blocks (enhanced, simple,
// obsolete) into records.

/// One interface description: link type, snapshot length and timestamp scale.
struct PcapngInterface {
    var linkType: LinkType
    var snapLength: Int
    /// Timestamp units per second are 10^exponent, or 2^exponent when `binary`.
    var exponent: UInt8 = 6
    var binary = false
    /// Seconds added to every timestamp.
    var offsetSeconds: Int64 = 0

    /// Nanoseconds in a timestamp unit, when units are decimal and at most a nanosecond.
    var decimalNanosecondsPerUnit: UInt64? {
        guard !binary, exponent <= 9 else { return nil }
        var scale: UInt64 = 1
        for _ in 0..<(9 - Int(exponent)) { scale *= 10 }
        return scale
    }

    /// Nanoseconds since the epoch for a raw timestamp, saturating instead of overflowing.
    func nanoseconds(_ raw: UInt64) -> UInt64 {
        var value: UInt64
        if binary {
            let (high, low) = raw.multipliedFullWidth(by: 1_000_000_000)
            let shift = UInt64(exponent)
            if shift >= 64 {
                value = high >> (shift - 64)
            } else if shift == 0 {
                value = high == 0 ? low : .max
            } else {
                value = high >> shift == 0 ? (high << (64 - shift)) | (low >> shift) : .max
            }
        } else if let scale = decimalNanosecondsPerUnit {
            let (product, overflow) = raw.multipliedReportingOverflow(by: scale)
            value = overflow ? .max : product
        } else {
            var divisor: UInt64 = 1
            for _ in 0..<min(19, Int(exponent) - 9) { divisor *= 10 }
            value = raw / divisor
        }
        let shifted = Int64(clamping: value).addingReportingOverflow(offsetSeconds &* 1_000_000_000)
        return shifted.overflow ? value : UInt64(max(0, shifted.partialValue))
    }
}

struct PcapngSection {
    static let headerType: UInt32 = 0x0A0D_0D0A

    var isOpen = false
    var bigEndian = false
    var interfaces: [PcapngInterface] = []
    /// Frames each interface's latest statistics block says were dropped (`isb_ifdrop` plus
    /// `isb_osdrop`), by interface id; only described interfaces, so bounded as they are.
    var drops: [Int: UInt64] = [:]
    /// A pcapng file may describe more interfaces than any real capture has; this bounds memory.
    static let maximumInterfaces = 65_536

    init() {}

    init(bigEndian: Bool) {
        self.isOpen = true
        self.bigEndian = bigEndian
    }

    mutating func addInterface(_ block: ByteView, at offset: Int) throws(CaptureError) {
        guard block.count >= 20 else {
            throw CaptureError(.badBlockLength, at: offset, "an interface description block is too short")
        }
        guard interfaces.count < Self.maximumInterfaces else {
            throw CaptureError(.unexpectedBlock, at: offset, "more than \(Self.maximumInterfaces) interfaces")
        }
        var interface = PcapngInterface(
            linkType: LinkType(rawValue: UInt32(block.u16(8, bigEndian: bigEndian)!)),
            snapLength: Int(block.u32(12, bigEndian: bigEndian)!))
        forEachOption(in: block, from: 16) { code, value, length in
            if code == 9, length >= 1 {
                let resolution = block.u8(value)!
                interface.binary = resolution & 0x80 != 0
                interface.exponent = resolution & 0x7F
            } else if code == 14, length >= 8 {
                let raw = bigEndian ? block.u32(value)! : block.u32le(value)!
                let rawLow = bigEndian ? block.u32(value + 4)! : block.u32le(value + 4)!
                let combined = bigEndian ? UInt64(raw) << 32 | UInt64(rawLow) : UInt64(rawLow) << 32 | UInt64(raw)
                interface.offsetSeconds = Int64(bitPattern: combined)
            }
        }
        interfaces.append(interface)
    }

    /// Calls `body` with each option of `block` from `start` on (code, the offset of its value,
    /// its length) until the end-of-options option or one that runs past the block.
    private func forEachOption(in block: ByteView, from start: Int, _ body: (UInt16, Int, Int) -> Void) {
        var position = start
        let optionsEnd = block.count - 4
        while position + 4 <= optionsEnd {
            let code = block.u16(position, bigEndian: bigEndian)!
            let length = Int(block.u16(position + 2, bigEndian: bigEndian)!)
            let value = position + 4
            if code == 0 || value + length > optionsEnd { return }
            body(code, value, length)
            position = value + (length + 3) & ~3
        }
    }

    /// Notes what an interface statistics block (type 5) says was dropped. A block naming no
    /// described interface, or too short to hold its fields, says nothing.
    mutating func addStatistics(_ block: ByteView) {
        guard block.count >= 24, let id = block.u32(8, bigEndian: bigEndian).map(Int.init), id < interfaces.count
        else { return }
        var dropped: UInt64?
        forEachOption(in: block, from: 20) { code, value, length in
            // isb_ifdrop (5) and isb_osdrop (7): 64-bit counts in the section's byte order.
            guard code == 5 || code == 7, length == 8 else { return }
            let first = UInt64(block.u32(value, bigEndian: bigEndian)!)
            let second = UInt64(block.u32(value + 4, bigEndian: bigEndian)!)
            let count = bigEndian ? first << 32 | second : second << 32 | first
            dropped = (dropped ?? 0).addingReportingOverflow(count).overflow ? .max : (dropped ?? 0) + count
        }
        if let dropped { drops[id] = dropped }
    }

    func packet(type: UInt32, block: ByteView, at offset: Int) throws(CaptureError) -> CaptureRecord? {
        switch type {
        case 6, 2:
            // Enhanced packet block (6), or the obsolete packet block (2) with a 16-bit interface id.
            guard block.count >= 32 else {
                throw CaptureError(.badBlockLength, at: offset, "a packet block is too short")
            }
            let interfaceID =
                type == 6 ? Int(block.u32(8, bigEndian: bigEndian)!) : Int(block.u16(8, bigEndian: bigEndian)!)
            let high = UInt64(block.u32(12, bigEndian: bigEndian)!)
            let low = UInt64(block.u32(16, bigEndian: bigEndian)!)
            let captured = Int(block.u32(20, bigEndian: bigEndian)!)
            let original = Int(block.u32(24, bigEndian: bigEndian)!)
            let interface = try self.interface(interfaceID, at: offset)
            guard captured <= CaptureReader.maximumCapturedLength else {
                throw CaptureError(.recordTooLarge, at: offset, "a record's captured length \(captured) is too large")
            }
            guard 28 + captured <= block.count - 4 else {
                throw CaptureError(.badBlockLength, at: offset, "a packet's data runs past its block")
            }
            return CaptureRecord(
                bytes: UnsafeRawBufferPointer(rebasing: block.bytes[28..<(28 + captured)]), originalLength: original,
                timestamp: interface.nanoseconds(high << 32 | low), linkType: interface.linkType,
                interfaceID: interfaceID, fileOffset: offset)
        case 3:
            // Simple packet block: interface 0, no timestamp, captured length implied.
            guard block.count >= 16 else {
                throw CaptureError(.badBlockLength, at: offset, "a simple packet block is too short")
            }
            let interface = try self.interface(0, at: offset)
            let original = Int(block.u32(8, bigEndian: bigEndian)!)
            var captured = min(original, block.count - 16)
            if interface.snapLength > 0 { captured = min(captured, interface.snapLength) }
            return CaptureRecord(
                bytes: UnsafeRawBufferPointer(rebasing: block.bytes[12..<(12 + captured)]), originalLength: original,
                timestamp: 0, linkType: interface.linkType, interfaceID: 0, fileOffset: offset)
        default:
            return nil
        }
    }

    /// What reading interface `id`'s enhanced packet blocks in place needs (`CaptureReader`):
    /// nil unless its timestamps are decimal units of at most a nanosecond with no offset, which
    /// convert by one multiplication (`PcapngInterface.nanoseconds` does the same for them).
    func inPlaceReading(_ id: Int) -> (id: Int, linkType: LinkType, nanosecondsPerUnit: UInt64)? {
        guard id >= 0, id < interfaces.count else { return nil }
        let interface = interfaces[id]
        guard interface.offsetSeconds == 0, let scale = interface.decimalNanosecondsPerUnit else { return nil }
        return (id, interface.linkType, scale)
    }

    private func interface(_ id: Int, at offset: Int) throws(CaptureError) -> PcapngInterface {
        guard id >= 0, id < interfaces.count else {
            throw CaptureError(.unknownInterface, at: offset, "a packet names interface \(id), which was not described")
        }
        return interfaces[id]
    }
}
