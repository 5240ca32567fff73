// What a pcapng file says its capturing tool dropped (interface statistics blocks): each
// interface's latest block counts, interface and OS drops together, over every section, in either
// byte order; a block naming no described interface, or a damaged one, says nothing and stops
// nothing; pcap files say nothing.

import Testing

@testable import PacketWire

@Suite struct CaptureStatisticsTests {
    static let frame = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp()))

    /// A little-endian section (our writer's) with `frames` frames, then statistics saying
    /// `dropped`, written twice (the second, later block is the one that counts).
    static func section(frames: Int, dropped: UInt64) throws -> [UInt8] {
        let writer = CaptureWriter(inMemory: .pcapng(nanosecond: true))
        for index in 0..<frames {
            try frame.withUnsafeBytes { try writer.write($0, timestamp: UInt64(index), linkType: .ethernet) }
        }
        try writer.writeStatistics(received: 0, dropped: dropped / 2, delivered: 0, timestamp: 1)
        try writer.writeStatistics(received: 0, dropped: dropped, delivered: 0, timestamp: 2)
        try writer.close()
        return writer.memory
    }

    /// A big-endian section: an interface, one frame, and statistics blocks with the given
    /// options (code, 64-bit value) for interface `id`.
    static func bigEndianSection(id: UInt32, options: [(UInt16, UInt64)], trailerOff: Bool = false) -> [UInt8] {
        var bytes = Frame.be32(0x0A0D_0D0A) + Frame.be32(28) + Frame.be32(0x1A2B_3C4D) + Frame.be16(1) + Frame.be16(0)
        bytes += Frame.be32(0xFFFF_FFFF) + Frame.be32(0xFFFF_FFFF) + Frame.be32(28)
        bytes += Frame.be32(1) + Frame.be32(20) + Frame.be16(1) + Frame.be16(0) + Frame.be32(0) + Frame.be32(20)
        let padded = frame + [UInt8](repeating: 0, count: (4 - frame.count % 4) % 4)
        let packetLength = UInt32(32 + padded.count)
        bytes += Frame.be32(6) + Frame.be32(packetLength) + Frame.be32(0) + Frame.be32(0) + Frame.be32(1)
        bytes += Frame.be32(UInt32(frame.count)) + Frame.be32(UInt32(frame.count)) + padded + Frame.be32(packetLength)
        var body = Frame.be32(id) + Frame.be32(0) + Frame.be32(5)
        for (code, value) in options {
            body +=
                Frame.be16(code) + Frame.be16(8) + Frame.be32(UInt32(value >> 32))
                + Frame.be32(UInt32(value & 0xFFFF_FFFF))
        }
        body += Frame.be32(0)
        let length = UInt32(12 + body.count)
        bytes += Frame.be32(5) + Frame.be32(length) + body + Frame.be32(trailerOff ? length + 4 : length)
        return bytes
    }

    static func read(_ bytes: [UInt8]) throws -> (frames: Int, dropped: UInt64?) {
        let reader = try CaptureReader(bytes: bytes)
        var frames = 0
        while try reader.read(maximum: 64, { _ in frames += 1 }) > 0 {}
        return (frames, reader.droppedWhileCapturing)
    }

    @Test func theLatestBlockOfEachInterfaceCountsOverEverySection() throws {
        let first = try Self.section(frames: 3, dropped: 7)
        let read = try Self.read(first)
        #expect(read.frames == 3 && read.dropped == 7)
        // A second section in the other byte order, interface and OS drops together.
        let second = Self.bigEndianSection(id: 0, options: [(5, 1 << 33), (7, 5), (4, 999)])
        let both = try Self.read(first + second)
        #expect(both.frames == 4 && both.dropped == 7 + (1 << 33) + 5)
        // Before any statistics block: nothing said.
        let reader = try CaptureReader(bytes: first)
        #expect(reader.droppedWhileCapturing == nil)
    }

    @Test func blocksThatSayNothingStopNothing() throws {
        // An undescribed interface, a block with no drop option, and a damaged trailer: the frame
        // still reads, and no drop count appears.
        for section in [
            Self.bigEndianSection(id: 3, options: [(5, 10)]), Self.bigEndianSection(id: 0, options: [(4, 10)]),
            Self.bigEndianSection(id: 0, options: [(5, 10)], trailerOff: true),
        ] {
            let read = try Self.read(section)
            #expect(read.frames == 1 && read.dropped == nil)
        }
        // Saturating, not trapping.
        let huge = try Self.read(Self.bigEndianSection(id: 0, options: [(5, .max), (7, .max)]))
        #expect(huge.dropped == .max)
        // pcap says nothing.
        let pcap = CaptureWriter(inMemory: .pcap(nanosecond: false))
        try Self.frame.withUnsafeBytes { try pcap.write($0, timestamp: 0, linkType: .ethernet) }
        try pcap.close()
        #expect(try Self.read(pcap.memory).dropped == nil)
    }
}
