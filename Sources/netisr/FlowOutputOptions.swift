// What `replay` and `capture` do with flow records: when they end (timeouts), and where they go —
// a file (CSV, JSON or IPFIX) and/or an IPFIX collector over UDP.

import ArgumentParser
import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

struct FlowOutputOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Write flow records to FILE: .json for JSON, .ipfix for IPFIX (RFC 5655, as nfdump and Wireshark read), "
                + "otherwise CSV; - writes CSV to standard output (the report then on standard error).",
            valueName: "file"))
    var flows: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Send flow records to an IPFIX collector over UDP at the end (nfcapd -p PORT, for instance).",
            valueName: "host:port"))
    var export: String?

    @Option(
        name: .customLong("idle-timeout"),
        help: ArgumentHelp(
            "End a flow's record when the flow has been idle SECONDS (capture time), as NetFlow's inactive "
                + "timeout does; its next packet starts a new record. Off by default.", valueName: "seconds"))
    var idleTimeout: Double?

    @Option(
        name: .customLong("active-timeout"),
        help: ArgumentHelp(
            "End a flow's record once it is SECONDS old (capture time), as NetFlow's active timeout does. Off by "
                + "default.", valueName: "seconds"))
    var activeTimeout: Double?

    func validate() throws {
        for (name, value) in [("--idle-timeout", idleTimeout), ("--active-timeout", activeTimeout)] {
            if let value, !(value > 0 && value.isFinite) {
                throw ValidationError("\(name) takes a positive number of seconds")
            }
        }
    }

    /// The timeouts asked for.
    var timeouts: FlowTimeouts { FlowTimeouts(idle: idleTimeout, active: activeTimeout) }

    /// Connects to the collector before any packet is read, so a bad address fails at once.
    func connect() throws -> IPFIXExporter? {
        guard let export else { return nil }
        do { return try IPFIXExporter(destination: export) } catch {
            standardError("netisr: --export \(error)")
            throw ExitCode(1)
        }
    }

    /// Writes the flow file and sends the records to the collector, as asked (sorted once for both).
    func emit(_ result: ReplayResult, exporter: consuming IPFIXExporter?) throws {
        guard flows != nil || export != nil else { return }
        let ordered = result.flowsInOrder()
        let exportTime = UInt32(clamping: time(nil))
        if let flows {
            if flows.hasSuffix(".ipfix") {
                var encoder = IPFIXEncoder(templates: .firstMessage)
                try writeFile(flows) { file in
                    try encoder.encode(ordered, exportTime: exportTime) { message, _ in try file.write(message) }
                }
            } else {
                let text = flows.hasSuffix(".json") ? ReplayReport.flowsJSON(ordered) : ReplayReport.flowsCSV(ordered)
                try writeFile(flows) { try $0.write(text) }
            }
        }
        guard var exporter else { return }
        let summary = exporter.export(ordered, exportTime: exportTime)
        standardError(
            "netisr: exported \(summary.records) flow records in \(summary.datagrams) IPFIX datagrams to "
                + exporter.destination)
        if let error = summary.firstError {
            standardError(
                "netisr: --export \(error) (\(summary.failedDatagrams) datagrams of \(summary.failedRecords) records not sent)"
            )
            throw ExitCode(1)
        }
    }
}
