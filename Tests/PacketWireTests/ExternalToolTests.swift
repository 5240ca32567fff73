// Files we write open in tshark and tcpdump with the same frames (runs when they are installed;
// CI installs them).

import PacketWire
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ExternalToolTests {
    @Test(arguments: [
        CaptureWriter.Format.pcap(nanosecond: false), .pcap(nanosecond: true), .pcapng(nanosecond: false),
        .pcapng(nanosecond: true),
    ])
    func tsharkAndTcpdumpReadWhatWeWrite(format: CaptureWriter.Format) throws {
        guard Shell.has("tshark") || Shell.has("tcpdump") else {
            print("neither tshark nor tcpdump is installed; skipping")
            return
        }
        let isPcap = format == .pcap(nanosecond: false) || format == .pcap(nanosecond: true)
        let path = "/tmp/netisr-written-\(getpid())-\(format).\(isPcap ? "pcap" : "pcapng")"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: format)
        var synthesizer = TrafficSynthesizer(.init(packets: 500, flows: 40, seed: 9))
        var wire = 0
        var tcp = 0
        try synthesizer.generate { frame, timestamp in
            wire += frame.count
            if PacketParser.parse(frame, linkType: .ethernet).transport == .tcp { tcp += 1 }
            try writer.write(frame, timestamp: timestamp, linkType: .ethernet)
        }
        try writer.close()
        if Shell.has("tshark") {
            let result = try #require(Shell.run("tshark -n -r '\(path)' -T fields -e frame.len -e tcp.srcport"))
            #expect(result.status == 0)
            let lines = result.output.split(separator: "\n")
            #expect(lines.count == 500)
            #expect(lines.reduce(0) { $0 + (Int($1.split(separator: "\t").first ?? "") ?? 0) } == wire)
            #expect(lines.filter { $0.split(separator: "\t").count == 2 }.count == tcp)
        }
        if Shell.has("tcpdump") {
            let result = try #require(Shell.run("tcpdump -nn -r '\(path)' | wc -l"))
            #expect(Int(result.output.filter { $0.isNumber }) == 500)
        }
    }

    /// capinfos finds the interface statistics a live capture's pcapng file ends with.
    @Test func capinfosReadsOurInterfaceStatistics() throws {
        guard Shell.has("capinfos") else {
            print("capinfos (Wireshark) is not installed; skipping")
            return
        }
        let path = "/tmp/netisr-statistics-\(getpid()).pcapng"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcapng(nanosecond: true))
        var synthesizer = TrafficSynthesizer(.init(packets: 50, flows: 5, seed: 3))
        try synthesizer.generate { frame, timestamp in
            try writer.write(frame, timestamp: timestamp, linkType: .ethernet)
        }
        try writer.writeStatistics(received: 60, dropped: 10, delivered: 50, timestamp: 1_700_000_000_000_000_000)
        try writer.close()
        let result = try #require(Shell.run("capinfos '\(path)'"))
        #expect(result.status == 0)
        #expect(result.output.contains("Number of packets:   50") || result.output.contains("Number of packets = 50"))
        #expect(result.output.contains("Number of stat entries = 1"), "\(result.output)")
    }
}
