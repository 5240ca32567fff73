// libFuzzer target: a classic BPF program and a frame, both from the input. The first byte is the
// program's length in instructions (8 bytes each, as `struct sock_filter` lays them out); the
// frame is what follows. The program is refused or runs to its end: no trap, no endless loop.

/// libFuzzer's entry point for the packet filter target.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFilter(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let count = Int(data[0])
    guard size >= 1 + count * 8 else { return 0 }
    let program = (0..<count).map { index in
        let bytes = data + 1 + index * 8
        return PacketFilter.Instruction(
            code: UInt16(bytes[0]) | UInt16(bytes[1]) << 8, jumpIfTrue: bytes[2], jumpIfFalse: bytes[3],
            constant: UInt32(bytes[4]) | UInt32(bytes[5]) << 8 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 24)
    }
    guard let filter = try? PacketFilter(instructions: program) else { return 0 }
    let frame = UnsafeRawBufferPointer(start: data + 1 + count * 8, count: size - 1 - count * 8)
    _ = filter.matches(frame, wireLength: frame.count)
    return 0
}
