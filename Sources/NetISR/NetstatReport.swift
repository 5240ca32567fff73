// NetstatReport: renders a snapshot the way FreeBSD's `netstat -Q` does — the same three
// sections, headers, column widths and libxo JSON key names — so people and scripts that read
// one can read the other.

/// Text and JSON renderings of a ``NetISRSnapshot`` in `netstat -Q` layout.
public enum NetstatReport {
    /// The `Configuration:`, `Protocols:` and `Workstreams:` sections, as `netstat -Q` prints them.
    public static func text(_ snapshot: NetISRSnapshot) -> String {
        var out = "Configuration:\n"
        out += line(left("Setting", 25), right("Current", 12), right("Limit", 12))
        let configuration = snapshot.configuration
        out += line(
            left("Thread count", 25), right(configuration.workstreamCount, 12),
            right(configuration.maximumWorkstreams, 12))
        out += line(
            left("Default queue limit", 25), right(configuration.defaultQueueLimit, 12),
            right(configuration.maximumQueueLimit, 12))
        out += line(left("Dispatch policy", 25), right(configuration.dispatchPolicy.rawValue, 12), right("n/a", 12))
        out += line(
            left("Threads bound to CPUs", 25), right(configuration.threadsBound ? "enabled" : "disabled", 12),
            right("n/a", 12))
        out += "\nProtocols:\n"
        out += line(
            left("Name", 6), right("Proto", 5), right("QLimit", 6), left("Policy", 6), left("Dispatch", 8),
            left("Flags", 5))
        for info in snapshot.protocols {
            out +=
                left(info.name, 6) + " " + right(info.number, 5) + " " + right(info.queueLimit, 6) + " "
                + right(info.ordering, 6) + " " + right(info.dispatchPolicy?.rawValue ?? "default", 8) + "   "
                + flags(info) + "\n"
        }
        out += "\nWorkstreams:\n"
        out +=
            right("WSID", 4) + " " + right("CPU", 3) + " " + right("", 2)
            + line(
                left("Name", 6), right("Len", 5), right("WMark", 5), right("Disp'd", 8), right("HDisp'd", 8),
                right("QDrops", 8), right("Queued", 8), right("Handled", 8))
        for row in snapshot.work {
            out +=
                right(row.workstream, 4) + " " + right(row.cpu, 3) + " " + "  " + left(row.name, 6) + " "
                + right(row.length, 5) + " " + right(row.watermark, 5) + " " + right(row.dispatched, 8) + " "
                + right(row.hybridDispatched, 8) + " " + right(row.queueDrops, 8) + " " + right(row.queued, 8) + " "
                + right(row.handled, 8) + "\n"
        }
        return out
    }

    /// The same data as JSON, under FreeBSD's libxo key names (`netstat -Q --libxo json`), plus the
    /// engine-wide totals under `totals`.
    public static func json(_ snapshot: NetISRSnapshot) -> String {
        let configuration = snapshot.configuration
        let configurationObject = JSONValue.object([
            ("threads", .int(configuration.workstreamCount)),
            ("max-threads", .int(configuration.maximumWorkstreams)),
            ("queue-limit", .int(configuration.defaultQueueLimit)),
            ("max-queue-limit", .int(configuration.maximumQueueLimit)),
            ("dispatch-policy", .string(configuration.dispatchPolicy.rawValue)),
            ("threads-bound", .bool(configuration.threadsBound)),
        ])
        let protocols = JSONValue.array(
            snapshot.protocols.map { info in
                .object([
                    ("name", .string(info.name)), ("protocol", .int(info.number)),
                    ("queue-limit", .int(info.queueLimit)), ("policy-type", .string(info.ordering)),
                    ("policy", .string(info.ordering)),
                    ("dispatch", .string(info.dispatchPolicy?.rawValue ?? "default")),
                    ("flags", .string(flags(info))),
                ])
            })
        let workstreams = JSONValue.array(
            snapshot.workstreams.map { workstream in
                .object([
                    ("workstream", .int(workstream.id)), ("cpu", .int(workstream.cpu)),
                    (
                        "work",
                        .array(
                            snapshot.work.filter { $0.workstream == workstream.id }.map { row in
                                .object([
                                    ("workstream", .int(row.workstream)), ("cpu", .int(row.cpu)),
                                    ("name", .string(row.name)), ("length", .int(row.length)),
                                    ("watermark", .int(row.watermark)), ("dispatched", .int(row.dispatched)),
                                    ("hybrid-dispatched", .int(row.hybridDispatched)),
                                    ("queue-drops", .int(row.queueDrops)), ("queued", .int(row.queued)),
                                    ("handled", .int(row.handled)),
                                ])
                            })
                    ),
                ])
            })
        let totals = snapshot.totals
        let totalsObject = JSONValue.object([
            ("offered", .int(totals.offered)), ("direct", .int(totals.direct)), ("deferred", .int(totals.deferred)),
            ("queued", .int(totals.queued)), ("handled", .int(totals.handled)),
            ("queue-drops", .int(totals.queueDrops)), ("no-handler-drops", .int(totals.noHandlerDrops)),
            ("drained-at-unregister", .int(totals.drainedAtUnregister)),
            ("discarded-at-stop", .int(totals.discardedAtStop)), ("still-queued", .int(totals.stillQueued)),
            ("software-interrupts", .int(totals.softwareInterrupts)), ("wakeups", .int(totals.wakeups)),
            ("waits", .int(totals.waits)),
        ])
        return JSONValue.object([
            (
                "netisr",
                .object([
                    ("configuration", configurationObject), ("protocol", protocols), ("workstream", workstreams),
                    ("totals", totalsObject),
                ])
            )
        ]).rendered
    }

    private static func flags(_ info: NetISRSnapshot.ProtocolInfo) -> String {
        (info.hasCPUCallback ? "C" : "-") + (info.hasDrainedCallback ? "D" : "-") + (info.hasFlowCallback ? "F" : "-")
    }

    private static func line(_ columns: String...) -> String { columns.joined(separator: " ") + "\n" }

    private static func left(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    private static func right(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    private static func right(_ value: Int, _ width: Int) -> String { right(String(value), width) }
}
