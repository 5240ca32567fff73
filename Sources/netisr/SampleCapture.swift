// The bundled sample capture: Samples/sample.pcapng in the package (made by
// `netisr synth --packets 10000 --flows 1000 --seed 1 --out Samples/sample.pcapng`). Found
// relative to this source file; if it is missing (an installed binary), it is made again — the
// synthesizer is deterministic, so the result is the same file.

import PacketWire

#if canImport(Glibc)
    import Glibc
#endif

enum SampleCapture {
    static let packets = 10_000
    static let flows = 1_000
    static let seed: UInt64 = 1

    static func path() throws -> String {
        var directory = #filePath
        for _ in 0..<3 {
            if let slash = directory.lastIndex(of: "/") { directory = String(directory[..<slash]) }
        }
        let bundled = directory + "/Samples/sample.pcapng"
        if access(bundled, R_OK) == 0 { return bundled }
        let made = "/tmp/netisr-sample-\(getuid()).pcapng"
        if access(made, R_OK) != 0 { try write(to: made) }
        return made
    }

    static func write(to path: String) throws {
        let writer = try CaptureWriter(path: path, format: .pcapng(nanosecond: false))
        var synthesizer = TrafficSynthesizer(.init(packets: packets, flows: flows, seed: seed))
        try synthesizer.generate { frame, timestamp in
            try writer.write(frame, timestamp: timestamp, linkType: .ethernet)
        }
        try writer.close()
    }
}
