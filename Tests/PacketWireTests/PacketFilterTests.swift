// PacketFilter: hand-assembled classic BPF programs (every instruction class), the checks that
// refuse malformed programs, hostile programs and frames, and libpcap's compiled expressions.

import PacketWire
import Testing

@Suite struct PacketFilterTests {
    typealias Instruction = PacketFilter.Instruction

    // Opcodes as bpf(4) composes them.
    static let ldhAbs: UInt16 = 0x28, ldbAbs: UInt16 = 0x30, ldwAbs: UInt16 = 0x20, ldhInd: UInt16 = 0x48
    static let ldLen: UInt16 = 0x80, ldMem: UInt16 = 0x60, ldImm: UInt16 = 0x00
    static let ldxMsh: UInt16 = 0xB1, ldxImm: UInt16 = 0x01, ldxMem: UInt16 = 0x61
    static let st: UInt16 = 0x02, stx: UInt16 = 0x03
    static let jeqK: UInt16 = 0x15, jgtK: UInt16 = 0x25, jsetK: UInt16 = 0x45, ja: UInt16 = 0x05
    static let addK: UInt16 = 0x04, subK: UInt16 = 0x14, mulK: UInt16 = 0x24, divX: UInt16 = 0x3C
    static let andK: UInt16 = 0x54, rshK: UInt16 = 0x74, modK: UInt16 = 0x94, xorK: UInt16 = 0xA4, neg: UInt16 = 0x84
    static let retK: UInt16 = 0x06, retA: UInt16 = 0x16, tax: UInt16 = 0x07, txa: UInt16 = 0x87

    func matches(_ program: [Instruction], _ frame: [UInt8], wireLength: Int? = nil) throws -> Bool {
        let filter = try PacketFilter(instructions: program)
        return frame.withUnsafeBytes { filter.matches($0, wireLength: wireLength ?? frame.count) }
    }

    /// `ip and tcp dst port 80` over Ethernet, as tcpdump -d prints it (without the fragment test).
    static let tcpToPort80: [Instruction] = [
        .init(code: ldhAbs, constant: 12),
        .init(code: jeqK, jumpIfTrue: 0, jumpIfFalse: 6, constant: 0x0800),
        .init(code: ldbAbs, constant: 23),
        .init(code: jeqK, jumpIfTrue: 0, jumpIfFalse: 4, constant: 6),
        .init(code: ldxMsh, constant: 14),
        .init(code: ldhInd, constant: 16),
        .init(code: jeqK, jumpIfTrue: 0, jumpIfFalse: 1, constant: 80),
        .init(code: retK, constant: 262_144),
        .init(code: retK, constant: 0),
    ]

    @Test func aHandAssembledProgramSelectsByProtocolAndPort() throws {
        let toWeb = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(destination: 80)))
        let toMail = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(destination: 25)))
        let udp = Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp(destination: 80)))
        let ipv6 = Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 6, Frame.tcp(destination: 80)))
        #expect(try matches(Self.tcpToPort80, toWeb))
        #expect(try !matches(Self.tcpToPort80, toMail))
        #expect(try !matches(Self.tcpToPort80, udp))
        #expect(try !matches(Self.tcpToPort80, ipv6))
        // Cut before the port: the load past the captured bytes rejects the frame.
        #expect(try !matches(Self.tcpToPort80, Array(toWeb.prefix(36)), wireLength: toWeb.count))
    }

    @Test func arithmeticMemoryRegistersAndLengthsRunAsSpecified() throws {
        let frame: [UInt8] = [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC]
        // ((word[0] >> 8) & 0xFFFF) = 0x3456; stored, reloaded, xor 0x3456 = 0 → returns 0.
        let roundTrip: [Instruction] = [
            .init(code: Self.ldwAbs, constant: 0), .init(code: Self.rshK, constant: 8),
            .init(code: Self.andK, constant: 0xFFFF), .init(code: Self.st, constant: 3),
            .init(code: Self.ldImm, constant: 1), .init(code: Self.ldMem, constant: 3),
            .init(code: Self.xorK, constant: 0x3456), .init(code: Self.retA),
        ]
        #expect(try !matches(roundTrip, frame))
        // (len * 3 + 4 - 1) % 7 with len = 100 → 303 % 7 = 2; through X and back.
        let lengths: [Instruction] = [
            .init(code: Self.ldLen), .init(code: Self.mulK, constant: 3), .init(code: Self.addK, constant: 4),
            .init(code: Self.subK, constant: 1), .init(code: Self.modK, constant: 7), .init(code: Self.tax),
            .init(code: Self.stx, constant: 15), .init(code: Self.ldxMem, constant: 15), .init(code: Self.txa),
            .init(code: Self.jeqK, jumpIfTrue: 0, jumpIfFalse: 1, constant: 2),
            .init(code: Self.retK, constant: 1), .init(code: Self.retK, constant: 0),
        ]
        #expect(try matches(lengths, frame, wireLength: 100))
        #expect(try !matches(lengths, frame, wireLength: 101))
        // JSET, JGT, an unconditional jump and negation.
        let bits: [Instruction] = [
            .init(code: Self.ldbAbs, constant: 5),  // 0xBC
            .init(code: Self.jsetK, jumpIfTrue: 1, jumpIfFalse: 0, constant: 0x80),
            .init(code: Self.retK, constant: 0),
            .init(code: Self.neg),  // 0xFFFFFF44
            .init(code: Self.jgtK, jumpIfTrue: 0, jumpIfFalse: 2, constant: 0xFFFF_FF00),
            .init(code: Self.ja, constant: 1),
            .init(code: Self.retK, constant: 0),
            .init(code: Self.retK, constant: 7),
        ]
        #expect(try matches(bits, frame))
        // Division by an X of zero rejects the frame.
        let divide: [Instruction] = [
            .init(code: Self.ldImm, constant: 10), .init(code: Self.ldxImm, constant: 0), .init(code: Self.divX),
            .init(code: Self.retK, constant: 1),
        ]
        #expect(try !matches(divide, frame))
    }

    @Test(arguments: [
        [Instruction](),
        [Instruction(code: 0x15, jumpIfTrue: 1, jumpIfFalse: 0), Instruction(code: 0x06)],  // jumps past the end
        [Instruction(code: 0x05, constant: 5), Instruction(code: 0x06)],  // jumps past the end
        [Instruction(code: 0x28, constant: 12)],  // no return
        [Instruction(code: 0x02, constant: 16), Instruction(code: 0x06)],  // outside scratch memory
        [Instruction(code: 0x60, constant: 99), Instruction(code: 0x06)],  // outside scratch memory
        [Instruction(code: 0x34, constant: 0), Instruction(code: 0x06)],  // divides by the constant 0
        [Instruction(code: 0xC5), Instruction(code: 0x06)],  // not a jump
        [Instruction(code: 0x0106)],  // not an instruction
        [Instruction(code: 0x38, constant: 0), Instruction(code: 0x06)],  // a load of 8 bytes
    ])
    func malformedProgramsAreRefusedWithAReason(program: [Instruction]) {
        #expect(throws: PacketFilterError.self) { try PacketFilter(instructions: program) }
    }

    /// Random programs over random frames: each is refused or runs to an end; none traps or loops.
    @Test func hostileProgramsAndFramesNeverTrap() {
        var generator = HostileInputTests.Generator(state: 7)
        let usefulCodes: [UInt16] = [
            0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80, 0x01, 0x61, 0x81, 0xB1, 0x02, 0x03, 0x04, 0x0C, 0x14,
            0x24, 0x34, 0x3C, 0x44, 0x54, 0x64, 0x6C, 0x74, 0x84, 0x94, 0x9C, 0xA4, 0x05, 0x15, 0x1D, 0x25, 0x35, 0x45,
            0x4D, 0x06, 0x16, 0x07, 0x87,
        ]
        var accepted = 0
        var kept = 0
        for _ in 0..<20_000 {
            let length = Int(generator.next() % 12) + 1
            var program: [Instruction] = (0..<length).map { _ in
                let code =
                    generator.next() % 8 == 0
                    ? UInt16(truncatingIfNeeded: generator.next()) : usefulCodes[Int(generator.next() % 41)]
                let small = generator.next() % 4 != 0
                return Instruction(
                    code: code, jumpIfTrue: UInt8(generator.next() % (small ? 4 : 256)),
                    jumpIfFalse: UInt8(generator.next() % (small ? 4 : 256)),
                    constant: small ? UInt32(generator.next() % 64) : UInt32(truncatingIfNeeded: generator.next()))
            }
            if generator.next() % 2 == 0 { program.append(Instruction(code: 0x16)) }
            guard let filter = try? PacketFilter(instructions: program) else { continue }
            accepted += 1
            let frame = (0..<Int(generator.next() % 80)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if frame.withUnsafeBytes({ filter.matches($0, wireLength: Int(generator.next() % 2_000)) }) { kept += 1 }
        }
        // Enough programs were valid to exercise the interpreter, and they did not all agree.
        #expect(accepted > 2_000)
        #expect(kept > 0 && kept < accepted)
    }

    /// Expressions compiled by libpcap select what the parser says the frames are.
    @Test func libpcapExpressionsSelectWhatTheParserFinds() throws {
        guard (try? PacketFilter("ip", linkType: .ethernet)) != nil else {
            print("libpcap is not installed; skipping (Debian: apt-get install libpcap0.8)")
            return
        }
        let frames: [[UInt8]] = [
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 6, Frame.tcp(destination: 443))),
            Frame.ethernet(type: 0x0800, Frame.ipv4(protocol: 17, Frame.udp(destination: 53))),
            Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 6, Frame.tcp(destination: 443))),
            Frame.ethernet(type: 0x86DD, Frame.ipv6(next: 17, Frame.udp(destination: 123))),
            Frame.ethernet(type: 0x0806, [UInt8](repeating: 0, count: 28)),
        ]
        let cases: [(String, (PacketSummary) -> Bool)] = [
            ("tcp", { $0.transport == .tcp }),
            ("udp", { $0.transport == .udp }),
            ("ip6", { $0.network == .ipv6 }),
            ("arp", { $0.network == .arp }),
            ("port 443", { $0.flow?.destinationPort == 443 }),
            ("ip and udp port 53", { $0.network == .ipv4 && $0.flow?.destinationPort == 53 }),
        ]
        for (expression, expected) in cases {
            let filter = try PacketFilter(expression, linkType: .ethernet)
            for frame in frames {
                let kept = frame.withUnsafeBytes { filter.matches($0, wireLength: frame.count) }
                #expect(kept == expected(Frame.parse(frame)), "\(expression)")
            }
        }
        // For raw IP (link type 101) libpcap's own number differs; the filter reads from the IP header.
        let raw = try PacketFilter("udp", linkType: .raw)
        let datagram = Frame.ipv4(protocol: 17, Frame.udp())
        #expect(datagram.withUnsafeBytes { raw.matches($0, wireLength: datagram.count) })
        #expect(throws: PacketFilterError.self) { try PacketFilter("tcp port", linkType: .ethernet) }
        #expect(throws: PacketFilterError.self) { try PacketFilter("ether host 0:1:2:3:4:5", linkType: .raw) }
    }
}
