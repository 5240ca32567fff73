// libFuzzer target: the pcapng reader and the parser on every record it yields.

/// libFuzzer's entry point for the pcapng reader target.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPcapng(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 4, data[0] == 0x0A, data[1] == 0x0D, data[2] == 0x0D, data[3] == 0x0A else { return 0 }
    FuzzSupport.readAndParse(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
