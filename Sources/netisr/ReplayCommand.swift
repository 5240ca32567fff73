// `netisr replay` (the default verb): capture files through the engine into flow accounting.

import ArgumentParser
import FlowMeter
import NetISR
import PacketWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Set by SIGINT/SIGTERM; the replay polls it and stops cleanly.
let interrupted = Atomic<Bool>(false)

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay capture files (pcap or pcapng, plain or gzip) through the engine into per-flow accounting.",
        discussion: "With no file, replays the bundled sample capture (made by `netisr synth`).")

    @Argument(
        help:
            "Capture files (pcap or pcapng, plain or gzip-compressed, detected from their content); - reads standard input."
    )
    var files: [String] = []

    @Option(name: .long, help: "Workstreams (worker threads); default: one per CPU.")
    var threads: Int?

    @Option(name: .long, help: "Dispatch policy for ip/ip6/arp: direct, hybrid or deferred.")
    var dispatch: DispatchPolicyArgument = .deferred

    @Option(name: .long, help: "Ordering of ip/ip6/arp packets: flow, source or cpu.")
    var policy: String = "flow"

    @Option(name: .long, help: "Queue limit per protocol and workstream (0: the engine's default, 256).")
    var qlimit = ReplayConfiguration().queueLimit

    @Flag(name: .long, help: "Bind workstream N to CPU N.")
    var bind = false

    @Flag(name: .long, help: "Keep workers polling instead of sleeping.")
    var poll = false

    @Option(name: .long, help: "max, realtime, or a factor of real time (2 = twice as fast).")
    var speed: String = "max"

    @Flag(name: .long, help: "Drop at full queues (drop-tail, as a live system would) instead of waiting.")
    var drop = false

    @Flag(name: .long, help: "Print one JSON object instead of the report.")
    var json = false

    @Option(name: .long, help: "Print one conversation table as CSV: ip, ipv6, tcp or udp.")
    var conversations: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Print one endpoint table (tshark's -z endpoints: what each address, or address and port, sent and "
                + "received) as CSV: ip, ipv6, tcp or udp."))
    var endpoints: String?

    @Option(
        name: .customLong("io-stat"),
        help: ArgumentHelp(
            "Print frames and bytes per SECONDS of capture time as CSV (tshark's -z io,stat,SECONDS); with --json, "
                + "in the object's io_stat.", valueName: "seconds"))
    var ioStat: Double?

    @OptionGroup var flowOutput: FlowOutputOptions

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Keep only frames matching a capture filter in tcpdump's syntax ('tcp port 443'); the others are counted "
                + "as filtered. Needs libpcap.", valueName: "expression"))
    var filter: String?

    @Flag(name: .long, help: "No progress bar.")
    var quiet = false

    @Option(name: .long, help: "Conversations, endpoints and services listed in the report's top tables (by bytes).")
    var top = 10

    func validate() throws {
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be 1…1024") }
        guard ["flow", "source", "cpu"].contains(policy) else {
            throw ValidationError("--policy is flow, source or cpu")
        }
        guard qlimit >= 0 else { throw ValidationError("--qlimit must not be negative") }
        guard top >= 0 else { throw ValidationError("--top must not be negative") }
        guard parsedSpeed != nil else { throw ValidationError("--speed is max, realtime or a positive number") }
        if let conversations, ConversationKind(rawValue: conversations) == nil {
            throw ValidationError("--conversations is ip, ipv6, tcp or udp")
        }
        if let endpoints, ConversationKind(rawValue: endpoints) == nil {
            throw ValidationError("--endpoints is ip, ipv6, tcp or udp")
        }
        if let ioStat, !(ioStat >= 0.000_001 && ioStat <= 1e9) {
            throw ValidationError("--io-stat takes seconds, at least 0.000001")
        }
        let tables = [conversations != nil, endpoints != nil, ioStat != nil && !json].filter { $0 }.count
        if tables > 1 {
            throw ValidationError("--conversations, --endpoints and --io-stat all write standard output: one at a time")
        }
        if tables > 0, flowOutput.flows == "-" {
            throw ValidationError("--conversations/--endpoints/--io-stat and --flows - both write standard output")
        }
        if let filter {
            // Checked for Ethernet now; other link types when their first frame comes.
            do { _ = try PacketFilter(filter, linkType: .ethernet) } catch { throw ValidationError(error.message) }
        }
    }

    var parsedSpeed: ReplayConfiguration.Speed? {
        switch speed {
        case "max": .maximum
        case "realtime": .factor(1)
        default: Double(speed).flatMap { $0 > 0 ? .factor($0) : nil }
        }
    }

    func run() throws {
        let inputs = files.isEmpty ? [try SampleCapture.path()] : files
        var configuration = ReplayConfiguration()
        configuration.threads = threads
        configuration.dispatch = dispatch.policy
        configuration.ordering = policy
        configuration.queueLimit = qlimit
        configuration.bindThreads = bind
        configuration.pollMode = poll
        configuration.dropWhenFull = drop
        configuration.speed = parsedSpeed ?? .maximum
        configuration.shouldStop = { interrupted.load(ordering: .relaxed) }
        configuration.flowTimeouts = flowOutput.timeouts
        configuration.filter = filter
        configuration.ioInterval = ioStat
        let progress = ProgressBar(files: inputs, enabled: !quiet && isatty(2) == 1)
        configuration.progress = { index, read, size in progress.update(file: index, read: read, size: size) }
        signal(SIGINT) { _ in interrupted.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in interrupted.store(true, ordering: .relaxed) }

        let exporter = try flowOutput.connect()
        let result = try Replay(configuration).run(files: inputs)
        progress.finish()
        for error in result.errors { standardError("netisr: \(error)") }
        // With the flow records on standard output, the report goes to standard error.
        let report =
            if let conversations, let kind = ConversationKind(rawValue: conversations) {
                ReplayReport.conversationsCSV(result, kind)
            } else if let endpoints, let kind = ConversationKind(rawValue: endpoints) {
                ReplayReport.endpointsCSV(result, kind)
            } else if json {
                ReplayReport.json(result) + "\n"
            } else if ioStat != nil {
                ReplayReport.ioStatisticsCSV(result)
            } else {
                ReplayReport.text(result, topConversations: top)
            }
        if flowOutput.flows == "-" { writeStandardError(report) } else { print(report, terminator: "") }
        try flowOutput.emit(result, exporter: exporter)
        if !result.errors.isEmpty { throw ExitCode(2) }
        if result.cancelled { throw ExitCode(130) }
    }
}

/// One line to standard error.
func standardError(_ line: String) {
    writeStandardError(line + "\n")
}

/// Text to standard error, unbuffered (`write(2)`, so no shared `FILE *` is involved).
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}
