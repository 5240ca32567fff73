// Shared by the fuzz targets.

enum FuzzSupport {
    static let hasher = ToeplitzHash()

    static func readAndParse(_ bytes: [UInt8]) {
        guard let reader = try? CaptureReader(bytes: bytes) else { return }
        while let count = try? reader.read(
            maximum: 64,
            { record in
                let summary = PacketParser.parse(record.bytes, linkType: record.linkType)
                if let flow = summary.flow { _ = hasher.symmetricHash(flow) }
            }), count > 0
        {}
    }
}
