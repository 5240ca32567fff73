// libFuzzer target: the header parser (full and the reader's short parse, which must agree) and
// the Toeplitz hash on one frame. The first byte picks the link type; the rest is the frame.

/// libFuzzer's entry point for the header parser target.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let linkTypes: [LinkType] = [.ethernet, .linuxSLL, .linuxSLL2, .raw, .ipv4, .ipv6, .null, .loop, .ppp, .pppHDLC]
    let linkType = linkTypes[Int(data[0]) % linkTypes.count]
    let frame = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let summary = PacketParser.parse(frame, linkType: linkType)
    if let flow = summary.flow { _ = FuzzSupport.hasher.symmetricHash(flow) }
    // The reader's short parse must see the same network layer and flow addresses.
    var addresses = PacketSummary()
    PacketParser.parseFlowAddresses(frame, linkType: linkType, into: &addresses)
    if addresses.network != summary.network || addresses.flow?.source != summary.flow?.source
        || addresses.flow?.destination != summary.flow?.destination
        || addresses.flow?.ipProtocol != summary.flow?.ipProtocol
    {
        fatalError("parseFlowAddresses disagrees with the full parse")
    }
    return 0
}
