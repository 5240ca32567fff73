// libFuzzer target: the gzip decompressor (GzipCaptureSource), then the pcap reader and the parser
// on what it yields. Inputs that do not start like gzip get a minimal gzip header put before them,
// so that every input explores DEFLATE data. Output is capped at 4 MiB per input: a small input
// may expand a thousandfold, and the fuzzer should spend its time on the decoder's paths.
// Each input is also compressed by GzipEncoder (in two blocks, split where its first byte says)
// and decompressed again: anything but the input back is a crash the fuzzer reports.

/// libFuzzer's entry point for the gzip target.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGzip(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    var input = Array(UnsafeBufferPointer(start: data, count: size))
    if !GzipCaptureSource.isGzip(input) { input = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3] + input }
    let source = GzipCaptureSource(MemoryCaptureSource(input), prefix: [])
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while output.count < 4 << 20 {
        let got = chunk.withUnsafeMutableBytes { try? source.read(into: $0.baseAddress!, count: $0.count) }
        guard let got, got > 0 else { break }
        output += chunk[0..<got]
    }
    FuzzSupport.readAndParse(output)
    roundTrip(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// Compresses `input` and decompresses it again; traps unless it comes back unchanged.
func roundTrip(_ input: UnsafeRawBufferPointer) {
    let encoder = GzipEncoder()
    let split = Int(input[0]) * input.count / 256
    var compressed = encoder.compress(UnsafeRawBufferPointer(rebasing: input[..<split]))
    compressed += encoder.compress(UnsafeRawBufferPointer(rebasing: input[split...]))
    compressed += encoder.finish()
    let source = GzipCaptureSource(MemoryCaptureSource(compressed), prefix: [])
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let got = chunk.withUnsafeMutableBytes { try? source.read(into: $0.baseAddress!, count: $0.count) }
        guard let got else { fatalError("our gzip output did not decompress") }
        if got == 0 { break }
        output += chunk[0..<got]
    }
    guard output.elementsEqual(input) else { fatalError("gzip round trip changed the data") }
}
