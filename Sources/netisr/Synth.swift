// `netisr synth`: writes synthetic traffic to a capture file (see TrafficSynthesizer).

import ArgumentParser
import PacketWire

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write realistic synthetic traffic (TCP, UDP, ICMP, IPv6, VLANs) to a pcap or pcapng file.")

    @Option(name: .long, help: "Packets to generate.")
    var packets = 100_000

    @Option(name: .long, help: "Distinct flows.")
    var flows = 10_000

    @Option(name: .long, help: "Random seed: the same seed gives the same file.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "pcap or pcapng (default: from the file name).")
    var format: String?

    @Option(name: .long, help: "Output file (- for standard output); a name ending in .gz is gzip-compressed.")
    var out: String

    func validate() throws {
        guard packets >= 0, flows >= 1 else { throw ValidationError("--packets ≥ 0 and --flows ≥ 1") }
        if let format, format != "pcap", format != "pcapng" { throw ValidationError("--format is pcap or pcapng") }
    }

    func run() throws {
        let fileFormat: CaptureWriter.Format =
            switch format {
            case "pcap": .pcap(nanosecond: false)
            case "pcapng": .pcapng(nanosecond: false)
            default: .forPath(out)
            }
        let writer = try CaptureWriter(path: out, format: fileFormat)
        var synthesizer = TrafficSynthesizer(.init(packets: packets, flows: flows, seed: seed))
        try synthesizer.generate { frame, timestamp in
            try writer.write(frame, timestamp: timestamp, linkType: .ethernet)
        }
        try writer.close()
        let destination = out == "-" ? "standard output" : out
        let summary = "wrote \(writer.frames) packets in \(min(flows, max(1, packets))) flows to \(destination)"
        // On standard output the capture is the output; the summary goes beside it.
        if out == "-" { standardError(summary) } else { print(summary) }
    }
}
