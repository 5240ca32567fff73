// `netisr capture`: live traffic from a Linux interface through the engine into the same flow
// accounting and report as `replay`, with the kernel's drops as their own reason.

import ArgumentParser
import FlowMeter
import NetISR
import PacketWire

#if canImport(Glibc)
    import Glibc
#endif

struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture from a Linux interface (AF_PACKET, TPACKET_V3 ring) into per-flow accounting.",
        discussion: "Runs until Ctrl-C/SIGTERM, --duration or --count. Needs CAP_NET_RAW (root).")

    @Option(name: [.customShort("i"), .long], help: "The interface (any: every interface, cooked).")
    var interface: String

    @Argument(help: "A filter in tcpdump's syntax, e.g. 'tcp port 443' (compiled with libpcap, loaded at run time).")
    var filter: [String] = []

    @Option(name: .long, help: "Stop after this many seconds.")
    var duration: Double?

    @Option(name: .long, help: "Stop after this many frames.")
    var count: Int?

    @Option(name: .long, help: "Workstreams (worker threads); default: one per CPU.")
    var threads: Int?

    @Option(name: .long, help: "Dispatch policy for ip/ip6/arp: direct, hybrid or deferred.")
    var dispatch: DispatchPolicyArgument = .deferred

    @Option(
        name: .long,
        help: """
            Queue limit per protocol and workstream (0: the engine's default, 256).
            """
    )
    var qlimit = 4_096

    @Flag(name: .long, help: "Drop at full queues (what a live system does) instead of waiting.")
    var drop = false

    @Flag(name: .long, help: "Put the interface in promiscuous mode.")
    var promiscuous = false

    @Flag(name: .long, help: "One socket and reader per workstream (PACKET_FANOUT, hash) instead of one reader.")
    var fanout = false

    @Option(name: .long, help: "Ring blocks (the ring is --blocks × --block-kib).")
    var blocks = 128

    @Option(name: .customLong("block-kib"), help: "KiB per ring block: a power of two, 128…65536.")
    var blockKiB = 256

    @OptionGroup var output: CaptureOutputOptions

    @OptionGroup var flowOutput: FlowOutputOptions

    @Option(
        name: .customLong("max-flows"),
        help: ArgumentHelp(
            "The most open flows kept: past it, the flows idle longest end early (IPFIX's \"lack of "
                + "resources\"; exported or written as asked, otherwise only counted), so a flood of new flows "
                + "costs bounded memory.",
            valueName: "n"))
    var maximumFlows = 1 << 20

    @Option(
        name: .customLong("max-conversations"),
        help: ArgumentHelp(
            "The most rows each conversation table keeps; frames of conversations beyond it are counted, "
                + "not tabled (the report says how many).", valueName: "n"))
    var maximumConversations = 1 << 18

    @Flag(name: .long, help: "Print one JSON object instead of the report.")
    var json = false

    @Option(name: .long, help: "Conversations, endpoints and services listed in the report's top tables (by bytes).")
    var top = 10

    @Flag(name: .long, help: "Show live statistics while capturing (a table on a terminal, a line otherwise).")
    var stats = false

    @Option(name: .long, help: "Seconds between live statistics.")
    var interval = 1.0

    @Option(name: .long, help: "Serve Prometheus metrics at http://HOST:PORT/metrics (loopback unless told otherwise).")
    var metrics: String?

    func validate() throws {
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
        if let count, count <= 0 { throw ValidationError("--count must be positive") }
        guard top >= 0 else { throw ValidationError("--top must not be negative") }
        guard (1...1024).contains(blocks) else { throw ValidationError("--blocks must be 1…1024") }
        guard (128...65_536).contains(blockKiB), blockKiB.nonzeroBitCount == 1 else {
            throw ValidationError("--block-kib must be a power of two, 128…65536")
        }
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
        guard maximumFlows > 0, maximumConversations > 0 else {
            throw ValidationError("--max-flows and --max-conversations must be positive")
        }
        if output.write == "-", flowOutput.flows == "-" {
            throw ValidationError("--write - and --flows - both write standard output")
        }
        if let metrics, metricsEndpoint(metrics) == nil {
            throw ValidationError("--metrics takes HOST:PORT (IPv4), e.g. 127.0.0.1:9464")
        }
    }

    /// What tcpdump says when it starts, and how many sockets read.
    static func listening(on interface: String, sockets: Int, linkType: LinkType) -> String {
        let name: String =
            switch linkType {
            case .ethernet: "EN10MB (Ethernet)"
            case .raw: "RAW (Raw IP)"
            default: "LINUX_SLL2 (Linux cooked v2)"
            }
        let fanout = sockets > 1 ? ", \(sockets) sockets in a fanout group" : ""
        return "netisr: listening on \(interface), link-type \(name)\(fanout)"
    }

    func metricsEndpoint(_ text: String) -> (host: String, port: UInt16)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
        return (String(parts[0]), port)
    }

    func run() throws {
        var configuration = ReplayConfiguration()
        configuration.threads = threads
        configuration.dispatch = dispatch.policy
        configuration.queueLimit = qlimit
        configuration.dropWhenFull = drop
        configuration.shouldStop = { interrupted.load(ordering: .relaxed) }
        configuration.flowTimeouts = flowOutput.liveTimeouts
        configuration.maximumConversations = maximumConversations
        signal(SIGINT) { _ in interrupted.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in interrupted.store(true, ordering: .relaxed) }
        var options = LiveCaptureOptions()
        options.promiscuous = promiscuous
        options.blockCount = blocks
        options.blockSize = blockKiB << 10
        options.filter = filter.isEmpty ? nil : filter.joined(separator: " ")
        options.snapLength = output.snapLength
        let export = try flowOutput.connectLive(maximumFlows: maximumFlows)
        let writer = try output.openWriter()
        let result: ReplayResult
        do {
            result = try Replay(configuration).run(
                interface: interface, options: options, duration: duration, count: count, write: writer,
                fanout: fanout, metrics: metrics.flatMap(metricsEndpoint),
                liveView: stats ? LiveStatisticsView(interface: interface, interval: interval).view : nil,
                flowExport: export
            ) { [interface] sockets, linkType in
                standardError(Self.listening(on: interface, sockets: sockets, linkType: linkType))
            }
        } catch let error as CaptureError {
            standardError("netisr: \(error.message)")
            throw ExitCode(1)
        } catch let error as MetricsError {
            standardError("netisr: \(error)")
            throw ExitCode(1)
        }
        if let writer { try output.finish(writer, after: result) }
        let report = json ? ReplayReport.json(result) + "\n" : ReplayReport.text(result, topConversations: top)
        // With the capture written to standard output, the report must not be mixed into it.
        // With the capture or the flow records on standard output, the report goes to standard error.
        if output.write == "-" || flowOutput.flows == "-" {
            writeStandardError(report)
        } else {
            print(report, terminator: "")
        }
        try flowOutput.emit(result, liveExport: export)
    }
}
