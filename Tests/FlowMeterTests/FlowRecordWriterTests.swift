// FlowRecordWriter, the flow file a live capture appends to as records end: written in batches it
// holds what the whole-file renderings hold (CSV and JSON byte for byte, IPFIX record for record),
// and a file that cannot be written is one clear error.

import PacketWire
import TestSupport
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct FlowRecordWriterTests {
    /// Flow records of a synthesized capture, with timeouts so some have ended.
    static func records() throws -> [FlowRecord] {
        let path = try SynthCapture.write(packets: 3_000, flows: 300, seed: 94, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        var configuration = ReplayConfiguration()
        configuration.flowTimeouts = FlowTimeouts(idle: 0.002, active: 0.02)
        return try Replay(configuration).run(files: [path]).flowsInOrder()
    }

    /// Writes `records` to `path` in batches of these sizes (the rest in a last one).
    static func write(_ records: [FlowRecord], to path: String, batches: [Int]) throws {
        var file = try FlowRecordWriter(path: path)
        var start = 0
        for size in batches + [records.count] {
            let end = min(start + size, records.count)
            try file.write(Array(records[start..<end]))
            start = end
        }
        #expect(file.recordsWritten == records.count)
        try file.finish()
    }

    @Test(arguments: [[], [0, 1], [5, 0, 200], [1, 1, 1]])
    func batchesMakeTheWholeFile(batches: [Int]) throws {
        let records = try Self.records()
        #expect(records.count > 300 && records.contains { $0.expiry != .none })
        let base = "/tmp/netisr-flowfile-\(getpid())-\(batches.count)-\(batches.first ?? -1)"
        for (suffix, whole) in [("csv", ReplayReport.flowsCSV(records)), ("json", ReplayReport.flowsJSON(records))] {
            let path = base + "." + suffix
            defer { unlink(path) }
            try Self.write(records, to: path, batches: batches)
            #expect(SharedFixtures.read(path) == whole, "\(suffix)")
        }
        // IPFIX: the templates once, then every record in order, whatever the batches.
        let path = base + ".ipfix"
        defer { unlink(path) }
        try Self.write(records, to: path, batches: batches)
        var bytes = try #require(SharedFixtures.bytes(path))[...]
        var decoder = IPFIXDecoder()
        var decoded: [String] = []
        var templates = 0
        while bytes.count >= 16 {
            let length = Int(bytes[bytes.startIndex + 2]) << 8 | Int(bytes[bytes.startIndex + 3])
            let decodedMessage = decoder.decode(Array(bytes.prefix(length)))
            let message = try #require(decodedMessage)
            decoded += message.records
            templates += message.hadTemplates ? 1 : 0
            bytes = bytes.dropFirst(length)
        }
        #expect(bytes.isEmpty && templates == 1)
        var reference = IPFIXDecoder()
        var expected: [String] = []
        var encoder = IPFIXEncoder(templates: .firstMessage)
        encoder.encode(records, exportTime: 0) { message, _ in expected += reference.decode(message)?.records ?? [] }
        #expect(decoded == expected)
    }

    @Test func aFileThatCannotBeWrittenIsOneClearError() {
        #expect {
            _ = try FlowRecordWriter(path: "/nonexistent-directory/flows.csv")
        } throws: { error in
            "\(error)" == "cannot write /nonexistent-directory/flows.csv: No such file or directory"
        }
    }
}
