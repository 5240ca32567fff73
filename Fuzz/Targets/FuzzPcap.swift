// libFuzzer target: the pcap reader and the parser on every record it yields.
// Inputs that are not pcap are skipped, so the fuzzer keeps a pcap magic and explores records.

/// libFuzzer's entry point for the pcap reader target.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPcap(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 4 else { return 0 }
    let magic = UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24
    guard [0xA1B2_C3D4, 0xA1B2_3C4D, 0xD4C3_B2A1, 0x4D3C_B2A1].contains(magic) else { return 0 }
    FuzzSupport.readAndParse(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
