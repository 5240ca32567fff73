// PacketFilter: a capture filter in tcpdump's syntax (`tcp port 443 and not host 10.0.0.1`), run
// on frames read from a file, as `tcpdump -r FILE EXPRESSION` does.
//
// libpcap (loaded at run time, as for live capture: PacketFilter+libpcap.swift) compiles the
// expression into a classic BPF program; the program runs here, in Swift, per frame. This file
// needs no C module, so the fuzzing build runs it. A program is checked once before it runs
// — every jump lands inside it and only forward, it ends in a return, scratch memory indices are
// in range — so a run always ends, after at most one pass over the instructions. Loads past the
// frame's captured bytes and division by zero reject the frame, as the kernel's interpreter
// does. Values are immutable once built: one filter may run on several threads.

/// Why a filter could not be built.
public struct PacketFilterError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, for people.
    public let message: String

    /// The message.
    public var description: String { message }
}

/// A compiled capture filter (classic BPF) that decides which frames to keep.
public struct PacketFilter: Sendable {
    /// One classic BPF instruction (the fields of the kernel's `struct sock_filter`).
    public struct Instruction: Hashable, Sendable {
        /// Class, size, mode and operation bits.
        public var code: UInt16
        /// Jump offset when a conditional jump's test holds.
        public var jumpIfTrue: UInt8
        /// Jump offset when it fails.
        public var jumpIfFalse: UInt8
        /// The constant operand.
        public var constant: UInt32

        /// An instruction from its four fields.
        public init(code: UInt16, jumpIfTrue: UInt8 = 0, jumpIfFalse: UInt8 = 0, constant: UInt32 = 0) {
            self.code = code
            self.jumpIfTrue = jumpIfTrue
            self.jumpIfFalse = jumpIfFalse
            self.constant = constant
        }
    }

    /// The checked program.
    public let instructions: [Instruction]

    /// A filter running `instructions`, after checking that they form a valid program.
    public init(instructions: [Instruction]) throws(PacketFilterError) {
        try Self.check(instructions)
        self.instructions = instructions
    }

    /// Words of scratch memory (`M[0]`…`M[15]`).
    private static let scratchWords = 16

    private static func check(_ program: [Instruction]) throws(PacketFilterError) {
        func invalid(_ index: Int, _ why: String) -> PacketFilterError {
            PacketFilterError(message: "invalid filter program: instruction \(index) \(why)")
        }
        guard !program.isEmpty, program.count <= 4_096 else {
            throw PacketFilterError(message: "invalid filter program: \(program.count) instructions (1…4096)")
        }
        for (index, instruction) in program.enumerated() {
            let code = instruction.code
            let remaining = program.count - index - 1
            guard code <= 0xFF else { throw invalid(index, "has an unknown code \(code)") }
            switch code & 0x07 {
            case 0x00, 0x01:  // LD, LDX
                let mode = code & 0xE0
                let valid: Bool =
                    switch (code & 0x07, mode) {
                    case (0x00, 0x00), (0x00, 0x20), (0x00, 0x40), (0x00, 0x80): code & 0x18 != 0x18
                    case (0x01, 0x00), (0x01, 0x80): code & 0x18 == 0
                    case (0x01, 0xA0): code & 0x18 == 0x10
                    case (_, 0x60): code & 0x18 == 0 && instruction.constant < scratchWords
                    default: false
                    }
                guard valid else { throw invalid(index, "is not a load this filter runs (code \(code))") }
            case 0x02, 0x03:  // ST, STX
                guard code & 0xF8 == 0 else { throw invalid(index, "is not a store (code \(code))") }
                guard instruction.constant < scratchWords else { throw invalid(index, "stores outside scratch memory") }
            case 0x04:  // ALU
                guard code & 0xF0 <= 0xA0, code & 0x08 == 0 || code & 0xF0 != 0x80 else {
                    throw invalid(index, "is not an arithmetic operation (code \(code))")
                }
                if code & 0x08 == 0 && (code & 0xF0 == 0x30 || code & 0xF0 == 0x90) && instruction.constant == 0 {
                    throw invalid(index, "divides by the constant 0")
                }
            case 0x05:  // JMP
                guard code & 0xF0 <= 0x40 else { throw invalid(index, "is not a jump (code \(code))") }
                if code & 0xF0 == 0 {
                    guard Int(instruction.constant) < remaining else { throw invalid(index, "jumps past the end") }
                } else {
                    guard Int(instruction.jumpIfTrue) < remaining, Int(instruction.jumpIfFalse) < remaining else {
                        throw invalid(index, "jumps past the end")
                    }
                }
            case 0x06:  // RET
                guard code & 0xF8 == 0 || code & 0xF8 == 0x10 else { throw invalid(index, "is not a return") }
            default:  // MISC: TAX, TXA
                guard code & 0xF8 == 0 || code & 0xF8 == 0x80 else {
                    throw invalid(index, "is not a register move (code \(code))")
                }
            }
        }
        guard program.last!.code & 0x07 == 0x06 else {
            throw PacketFilterError(message: "invalid filter program: it does not end in a return")
        }
    }

    /// Whether the frame `bytes` (captured; `wireLength` on the wire) passes the filter.
    public func matches(_ bytes: UnsafeRawBufferPointer, wireLength: Int) -> Bool {
        run(bytes, wireLength: UInt32(clamping: wireLength)) != 0
    }

    /// Runs the program; its return value (0: reject).
    private func run(_ bytes: UnsafeRawBufferPointer, wireLength: UInt32) -> UInt32 {
        var accumulator: UInt32 = 0
        var index: UInt32 = 0
        var scratch = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &scratch) { scratchBytes in
            let memory = scratchBytes.bindMemory(to: UInt32.self)
            // A big-endian load of `size` bytes at `offset`, or nil past the captured bytes.
            func load(_ offset: UInt32, _ size: Int) -> UInt32? {
                let start = Int(offset)
                guard start <= bytes.count - size else { return nil }
                var value: UInt32 = 0
                for byte in 0..<size { value = value << 8 | UInt32(bytes[start + byte]) }
                return value
            }
            var pc = 0
            while true {
                let instruction = instructions[pc]
                let code = instruction.code
                let k = instruction.constant
                pc += 1
                switch code & 0x07 {
                case 0x00:  // LD
                    let size = code & 0x18 == 0x10 ? 1 : code & 0x18 == 0x08 ? 2 : 4
                    switch code & 0xE0 {
                    case 0x00: accumulator = k
                    case 0x20:
                        guard let value = load(k, size) else { return 0 }
                        accumulator = value
                    case 0x40:
                        let (offset, overflow) = index.addingReportingOverflow(k)
                        guard !overflow, let value = load(offset, size) else { return 0 }
                        accumulator = value
                    case 0x60: accumulator = memory[Int(k)]
                    default: accumulator = wireLength
                    }
                case 0x01:  // LDX
                    switch code & 0xE0 {
                    case 0x00: index = k
                    case 0x60: index = memory[Int(k)]
                    case 0x80: index = wireLength
                    default:  // MSH: four times the low nibble of a byte (an IPv4 header's length)
                        guard let value = load(k, 1) else { return 0 }
                        index = (value & 0x0F) << 2
                    }
                case 0x02: memory[Int(k)] = accumulator
                case 0x03: memory[Int(k)] = index
                case 0x04:  // ALU
                    let operand = code & 0x08 == 0 ? k : index
                    switch code & 0xF0 {
                    case 0x00: accumulator &+= operand
                    case 0x10: accumulator &-= operand
                    case 0x20: accumulator &*= operand
                    case 0x30:
                        guard operand != 0 else { return 0 }
                        accumulator /= operand
                    case 0x40: accumulator |= operand
                    case 0x50: accumulator &= operand
                    case 0x60: accumulator = operand < 32 ? accumulator << operand : 0
                    case 0x70: accumulator = operand < 32 ? accumulator >> operand : 0
                    case 0x80: accumulator = 0 &- accumulator
                    case 0x90:
                        guard operand != 0 else { return 0 }
                        accumulator %= operand
                    default: accumulator ^= operand
                    }
                case 0x05:  // JMP
                    let operand = code & 0x08 == 0 ? k : index
                    let taken: Bool
                    switch code & 0xF0 {
                    case 0x00:
                        pc += Int(k)
                        continue
                    case 0x10: taken = accumulator == operand
                    case 0x20: taken = accumulator > operand
                    case 0x30: taken = accumulator >= operand
                    default: taken = accumulator & operand != 0
                    }
                    pc += Int(taken ? instruction.jumpIfTrue : instruction.jumpIfFalse)
                case 0x06: return code & 0x18 == 0x10 ? accumulator : k
                default:
                    if code & 0xF8 == 0 { index = accumulator } else { accumulator = index }
                }
            }
        }
    }
}
