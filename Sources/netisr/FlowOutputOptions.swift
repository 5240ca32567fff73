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
            "Send flow records to an IPFIX collector over UDP (nfcapd -p PORT, for instance): at the end of a replay; "
                + "during a capture, as their timeouts end them (idle 15 s and active 1800 s unless given).",
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

    /// A live capture's timeouts: with `--export` and none given, Cisco NetFlow's defaults (15 s
    /// idle, 30 min active), so that records go out while the capture runs.
    var liveTimeouts: FlowTimeouts {
        export != nil && idleTimeout == nil && activeTimeout == nil ? FlowTimeouts(idle: 15, active: 1_800) : timeouts
    }

    /// For a live capture: the collector connected and the flow file created, as asked, records
    /// going to both as they end; with neither, the sweeps only keep the tables within
    /// `maximumFlows`, so a long capture's memory stays bounded.
    func connectLive(maximumFlows: Int) throws -> LiveFlowExport {
        let exporter = try connect()
        return LiveFlowExport(exporter: exporter, file: try flows.map(openFlowFile), maximumFlows: maximumFlows)
    }

    /// After a live capture: sends the records still open to the collector and the flow file, and
    /// closes the file.
    func emit(_ result: ReplayResult, liveExport: LiveFlowExport) throws {
        if liveExport.sendsRecords { liveExport.send(result.flowsInOrder()) }
        do { try liveExport.finish() } catch { throw ValidationError(error.description) }
        if let destination = liveExport.destination { try report(liveExport.summary, destination: destination) }
    }

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
        if let flows { try writeFlows(ordered, to: flows) }
        guard var exporter else { return }
        try report(exporter.export(ordered, exportTime: UInt32(clamping: time(nil))), destination: exporter.destination)
    }

    /// Writes `ordered` to `path` as its extension asks.
    private func writeFlows(_ ordered: [FlowRecord], to path: String) throws {
        var file = try openFlowFile(path)
        do {
            try file.write(ordered)
            try file.finish()
        } catch { throw ValidationError(error.description) }
    }

    /// Creates the flow file at `path` ("-": standard output, after what is buffered there).
    private func openFlowFile(_ path: String) throws -> FlowRecordWriter {
        if path == "-" { fflush(nil) }
        do { return try FlowRecordWriter(path: path) } catch { throw ValidationError(error.description) }
    }

    /// Says what an export sent; a failure also exits with status 1.
    private func report(_ summary: IPFIXExportSummary, destination: String) throws {
        standardError(
            "netisr: exported \(summary.records) flow records in \(summary.datagrams) IPFIX datagrams to \(destination)"
        )
        if let error = summary.firstError {
            standardError(
                "netisr: --export \(error) (\(summary.failedDatagrams) datagrams of \(summary.failedRecords) records not sent)"
            )
            throw ExitCode(1)
        }
    }
}
