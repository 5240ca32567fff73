// ReplayReport: how a replay's result is shown — the summary a network engineer expects, the
// conversation tables as CSV (tshark's columns), flow records as CSV or JSON, and one JSON
// object for scripts.

import NetISR
import PacketWire

/// Renderings of a `ReplayResult`.
public enum ReplayReport {
    /// The `count` TCP and UDP conversations with the most bytes (earliest first among equals, then
    /// by endpoints, TCP before UDP: one order whatever order the rows come in).
    private static func largestConversations(_ result: ReplayResult, _ count: Int) -> [(
        ConversationKind, ConversationRow
    )] {
        let rows = [ConversationKind.tcp, .udp].lazy.flatMap { kind in
            result.conversations[kind, default: []].lazy.map { (kind, $0) }
        }
        return largest(count, of: rows) { a, b in
            if a.1.bytes != b.1.bytes { return a.1.bytes > b.1.bytes }
            return (a.1.firstTimestamp, a.1.addressA, a.1.portA, a.1.addressB, a.1.portB, a.0 == .tcp ? 0 : 1)
                < (b.1.firstTimestamp, b.1.addressA, b.1.portA, b.1.addressB, b.1.portB, b.0 == .tcp ? 0 : 1)
        }
    }

    /// Frames, bytes, duration and rates, the l3/l4 table, the top conversations, endpoints (IP
    /// addresses) and services (responder ports) by bytes — `topConversations` rows each — drops
    /// by reason, then the engine's `netstat -Q` report.
    public static func text(_ result: ReplayResult, topConversations: Int = 10) -> String {
        var out = ""
        let seconds = Double(result.elapsedNanoseconds) / 1e9
        let span = result.timeSpan.map { Double($0.last - $0.first) / 1e9 } ?? 0
        out +=
            "Frames:     \(result.frames)   wire bytes: \(result.wireBytes)   captured bytes: \(result.capturedBytes)\n"
        if let filter = result.filter {
            out += "Filter:     \(filter) (\(result.filteredFrames) frames did not match and are not counted)\n"
        }
        out += "Capture:    \(fixed(span, 3)) s of traffic"
        if span > 0 { out += " (\(fixed(Double(result.wireBytes) * 8 / span / 1e6, 2)) Mbit/s on the wire)" }
        out += "\n"
        if let dropped = result.droppedWhileCapturing, dropped > 0 {
            out += "Capture drops: \(dropped) frames, by the capturing tool's own statistics (not in the file)\n"
        }
        let rate = Double(result.frames) / max(seconds, 1e-9)
        if result.isLive {
            out += "Listened:   \(fixed(seconds, 2)) s, \(fixed(rate / 1e3, 1)) kframes/s on average\n"
        } else {
            out += "Replayed:   \(fixed(seconds * 1e3, 1)) ms, \(fixed(rate / 1e6, 2)) Mpps"
            out += ", \(fixed(Double(result.wireBytes) / max(seconds, 1e-9) / 1e9, 2)) GB/s\n"
        }
        if result.cancelled { out += "Interrupted: the counts cover the frames read before Ctrl-C.\n" }
        for error in result.errors { out += "Error:      \(error)\n" }
        out += "\nProtocols (first network / transport layer):\n"
        out += pad("l3", 8) + pad("l4", 8) + pad("frames", 12, right: true) + pad("share", 9, right: true) + "\n"
        for row in result.layers {
            let share = result.frames > 0 ? Double(row.frames) * 100 / Double(result.frames) : 0
            out +=
                pad(row.network.rawValue, 8) + pad(row.transport.rawValue, 8) + pad(String(row.frames), 12, right: true)
                + pad(fixed(share, 1) + "%", 9, right: true) + "\n"
        }
        let top = largestConversations(result, topConversations)
        out += "\nTop conversations by bytes (\(result.conversations[.tcp, default: []].count) TCP, "
        out +=
            "\(result.conversations[.udp, default: []].count) UDP, \(result.conversations[.ip, default: []].count) IPv4, "
        out += "\(result.conversations[.ipv6, default: []].count) IPv6; \(result.flowCount) "
        out += (result.flowTimeouts.areSet ? "flow records, " + timeoutsText(result.flowTimeouts) : "flows")
        if result.flowsExportedDuringCapture > 0 {
            out += "; \(result.flowsExportedDuringCapture) exported as they ended"
        }
        if result.flowsDiscardedDuringCapture > 0 {
            out += "; \(result.flowsDiscardedDuringCapture) of them ended during the capture, counted but not kept"
        }
        out += "):\n"
        out +=
            pad("proto", 6) + pad("A", 44) + pad("B", 44) + pad("frames", 9, right: true)
            + pad("bytes", 12, right: true) + "\n"
        for (kind, row) in top {
            out +=
                pad(kind.rawValue, 6) + pad(endpoint(row.addressA, row.portA), 44)
                + pad(endpoint(row.addressB, row.portB), 44)
                + pad(String(row.frames), 9, right: true) + pad(String(row.bytes), 12, right: true) + "\n"
        }
        let endpoints = EndpointTable.unorderedInHalves([
            result.conversations[.ip, default: []], result.conversations[.ipv6, default: []],
        ])
        let (ipv4, ipv6) = (endpoints[0].reduce(0) { $0 + $1.count }, endpoints[1].reduce(0) { $0 + $1.count })
        out += "\nTop endpoints by bytes (\(ipv4) IPv4, \(ipv6) IPv6 addresses):\n"
        out +=
            pad("address", 40) + pad("frames", 9, right: true) + pad("bytes", 12, right: true)
            + pad("sent", 12, right: true) + pad("received", 12, right: true) + "\n"
        let topEndpoints = largest(topConversations, of: endpoints.joined().joined()) { a, b in
            a.bytes != b.bytes ? a.bytes > b.bytes : (a.address, a.port) < (b.address, b.port)
        }
        for row in topEndpoints {
            out +=
                pad(row.address.description, 40) + pad(String(row.frames), 9, right: true)
                + pad(String(row.bytes), 12, right: true) + pad(String(row.bytesSent), 12, right: true)
                + pad(String(row.bytesReceived), 12, right: true) + "\n"
        }
        out += servicesText(result, topConversations)
        let untracked = ConversationKind.allCases.compactMap { kind in
            result.untrackedConversationFrames[kind].map { "\(kind.rawValue) \($0)" }
        }
        if !untracked.isEmpty {
            out += "Frames of conversations the full tables had no row for: " + untracked.joined(separator: ", ") + "\n"
        }
        out += "\nDrops:\n"
        for (reason, packets) in result.drops { out += pad(reason, 30) + pad(String(packets), 12, right: true) + "\n" }
        out += "\n" + NetstatReport.text(result.snapshot)
        return out
    }

    /// One endpoint table as CSV (`address,port,frames,bytes,txFrames,txBytes,rxFrames,rxBytes`;
    /// ports empty for ip/ipv6), by address and port.
    public static func endpointsCSV(_ result: ReplayResult, _ kind: ConversationKind) -> String {
        let rows = result.endpoints(kind)
        var out = TextBuffer(capacity: 100 + rows.count * 64)
        out.append("address,port,frames,bytes,txFrames,txBytes,rxFrames,rxBytes\n")
        let comma = UInt8(ascii: ",")
        for row in rows {
            out.append(row.address)
            out.append(comma)
            if kind == .tcp || kind == .udp { out.append(decimal: row.port) }
            for value in [row.frames, row.bytes, row.framesSent, row.bytesSent, row.framesReceived, row.bytesReceived] {
                out.append(comma)
                out.append(decimal: value)
            }
            out.append(UInt8(ascii: "\n"))
        }
        return out.text
    }

    /// One conversation table as CSV with tshark's oracle columns.
    public static func conversationsCSV(_ result: ReplayResult, _ kind: ConversationKind) -> String {
        let rows = result.sortedConversations(kind)
        var out = TextBuffer(capacity: 100 + rows.count * 96)
        out.append("addrA,portA,addrB,portB,framesAtoB,bytesAtoB,framesBtoA,bytesBtoA,frames,bytes\n")
        let ports = kind == .tcp || kind == .udp
        let comma = UInt8(ascii: ",")
        for row in rows {
            out.append(row.addressA)
            out.append(comma)
            if ports { out.append(decimal: row.portA) }
            out.append(comma)
            out.append(row.addressB)
            out.append(comma)
            if ports { out.append(decimal: row.portB) }
            out.append(comma)
            out.append(decimal: row.framesAToB)
            out.append(comma)
            out.append(decimal: row.bytesAToB)
            out.append(comma)
            out.append(decimal: row.framesBToA)
            out.append(comma)
            out.append(decimal: row.bytesBToA)
            out.append(comma)
            out.append(decimal: row.frames)
            out.append(comma)
            out.append(decimal: row.bytes)
            out.append(UInt8(ascii: "\n"))
        }
        return out.text
    }

    /// Flow records as CSV, in `flowsInOrder()`'s order.
    public static func flowsCSV(_ result: ReplayResult) -> String { flowsCSV(result.flowsInOrder()) }

    /// These flow records as CSV, in this order.
    public static func flowsCSV(_ flows: [FlowRecord]) -> String {
        var out = TextBuffer(capacity: 200 + flows.count * 128)
        out.append(flowsCSVHeader)
        appendCSV(flows, to: &out)
        return out.text
    }

    /// The flow CSV's header line.
    static let flowsCSVHeader =
        "src,sport,dst,dport,proto,vlan,first_ns,last_ns,packets_fwd,bytes_fwd,packets_rev,bytes_rev,tcp_flags,"
        + "workstream,ended_by,icmp_type,icmp_code\n"

    /// Appends flow records as CSV lines (no header).
    static func appendCSV(_ flows: [FlowRecord], to out: inout TextBuffer) {
        let comma = UInt8(ascii: ",")
        for flow in flows {
            let key = flow.key
            out.append(key.source)
            out.append(comma)
            out.append(decimal: key.sourcePort)
            out.append(comma)
            out.append(key.destination)
            out.append(comma)
            out.append(decimal: key.destinationPort)
            out.append(comma)
            out.append(decimal: key.ipProtocol)
            out.append(comma)
            if let vlan = flow.vlan { out.append(decimal: vlan) }
            out.append(comma)
            out.append(decimal: flow.firstTimestamp)
            out.append(comma)
            out.append(decimal: flow.lastTimestamp)
            out.append(comma)
            out.append(decimal: flow.packetsForward)
            out.append(comma)
            out.append(decimal: flow.bytesForward)
            out.append(comma)
            out.append(decimal: flow.packetsReverse)
            out.append(comma)
            out.append(decimal: flow.bytesReverse)
            out.append(comma)
            out.append(tcpFlags: flow.tcpFlags)
            out.append(comma)
            out.append(decimal: flow.workstream)
            out.append(comma)
            if let ended = endedBy(flow.expiry) { out.append(ended) }
            out.append(comma)
            if let typeCode = flow.icmpTypeCode { out.append(decimal: typeCode >> 8) }
            out.append(comma)
            if let typeCode = flow.icmpTypeCode { out.append(decimal: typeCode & 0xFF) }
            out.append(UInt8(ascii: "\n"))
        }
    }

    /// Flow records as a JSON array, in `flowsInOrder()`'s order.
    public static func flowsJSON(_ result: ReplayResult) -> String { flowsJSON(result.flowsInOrder()) }

    /// These flow records as a JSON array, in this order (written straight as text: a JSONValue
    /// tree of 100k records took 2.7 s and 200 MB).
    public static func flowsJSON(_ flows: [FlowRecord]) -> String {
        var out = TextBuffer(capacity: 4 + flows.count * 280)
        out.append("[")
        appendJSON(flows, to: &out, first: true)
        out.append("]\n")
        return out.text
    }

    /// Appends flow records as JSON objects, comma-separated (a comma first unless `first`).
    static func appendJSON(_ flows: [FlowRecord], to out: inout TextBuffer, first: Bool) {
        func number(_ key: String, _ value: some BinaryInteger) {
            out.append(key)
            out.append(decimal: value)
        }
        for (index, flow) in flows.enumerated() {
            out.append(index == 0 && first ? "{\"src\":\"" : ",{\"src\":\"")
            out.append(flow.key.source)
            number("\",\"sport\":", flow.key.sourcePort)
            out.append(",\"dst\":\"")
            out.append(flow.key.destination)
            number("\",\"dport\":", flow.key.destinationPort)
            number(",\"proto\":", flow.key.ipProtocol)
            if let vlan = flow.vlan { number(",\"vlan\":", vlan) } else { out.append(",\"vlan\":null") }
            number(",\"first_ns\":", Int(clamping: flow.firstTimestamp))
            number(",\"last_ns\":", Int(clamping: flow.lastTimestamp))
            number(",\"packets_fwd\":", flow.packetsForward)
            number(",\"bytes_fwd\":", flow.bytesForward)
            number(",\"packets_rev\":", flow.packetsReverse)
            number(",\"bytes_rev\":", flow.bytesReverse)
            out.append(",\"tcp_flags\":\"")
            out.append(tcpFlags: flow.tcpFlags)
            number("\",\"workstream\":", flow.workstream)
            out.append(endedBy(flow.expiry).map { ",\"ended_by\":\"\($0)\"" } ?? ",\"ended_by\":null")
            if let typeCode = flow.icmpTypeCode {
                number(",\"icmp_type\":", typeCode >> 8)
                number(",\"icmp_code\":", typeCode & 0xFF)
                out.append("}")
            } else {
                out.append(",\"icmp_type\":null,\"icmp_code\":null}")
            }
        }
    }

    /// Everything as one JSON object: frames, wire_bytes, captured_bytes, l3l4, drops, errors,
    /// conversations (counts), flows, netisr (the netstat -Q data), and io_stat when the replay
    /// counted intervals (`ReplayConfiguration.ioInterval`).
    public static func json(_ result: ReplayResult) -> String {
        let netisr = NetstatReport.json(result.snapshot)
        var fields: [(String, JSONValue)] = [
            ("frames", .int(result.frames)), ("wire_bytes", .int(result.wireBytes)),
            ("captured_bytes", .int(result.capturedBytes)),
            ("first_ns", result.timeSpan.map { .int(Int(clamping: $0.first)) } ?? .null),
            ("last_ns", result.timeSpan.map { .int(Int(clamping: $0.last)) } ?? .null),
            ("elapsed_ns", .int(Int(clamping: result.elapsedNanoseconds))),
            ("cancelled", .bool(result.cancelled)),
            ("filter", result.filter.map { .string($0) } ?? .null), ("filtered", .int(result.filteredFrames)),
            (
                "l3l4",
                .array(
                    result.layers.map {
                        .object([
                            ("l3", .string($0.network.rawValue)), ("l4", .string($0.transport.rawValue)),
                            ("frames", .int($0.frames)),
                        ])
                    })
            ),
            ("drops", .object(result.drops.map { ($0.reason, .int($0.packets)) })),
            (
                "errors",
                .array(
                    result.errors.map {
                        .object([
                            ("file", .string($0.file)), ("offset", .int($0.error.offset)),
                            ("code", .string($0.error.code.description)), ("message", .string($0.error.message)),
                        ])
                    })
            ),
            (
                "conversations",
                .object(
                    ConversationKind.allCases.map { ($0.rawValue, .int(result.conversations[$0, default: []].count)) })
            ),
            (
                "conversations_untracked_frames",
                .object(
                    ConversationKind.allCases.map { ($0.rawValue, .int(result.untrackedConversationFrames[$0] ?? 0)) })
            ),
            ("flows", .int(result.flowCount)),
            ("flows_exported_during_capture", .int(result.flowsExportedDuringCapture)),
            ("flows_discarded_during_capture", .int(result.flowsDiscardedDuringCapture)),
            ("dropped_while_capturing", result.droppedWhileCapturing.map { .int($0) } ?? .null),
            (
                "flow_timeouts",
                .object([
                    ("idle_ns", timeout(result.flowTimeouts.idleNanoseconds)),
                    ("active_ns", timeout(result.flowTimeouts.activeNanoseconds)),
                ])
            ),
        ]
        if let io = result.ioStatistics { fields.append(("io_stat", ioStatisticsJSON(io))) }
        // Splice the engine's report in under "netisr" (it is already JSON).
        var text = JSONValue.object(fields).rendered
        text.removeLast()
        let inner = netisr.dropFirst("{\"netisr\":".count).dropLast()
        return text + ",\"netisr\":" + inner + "}"
    }

    /// What ended a record before the capture did (`idle-timeout`, `active-timeout`,
    /// `end-of-flow`), or nil.
    static func endedBy(_ expiry: FlowExpiry) -> String? {
        switch expiry {
        case .none: nil
        case .idleTimeout: "idle-timeout"
        case .activeTimeout: "active-timeout"
        case .endOfFlow: "end-of-flow"
        case .tableFull: "table-full"
        }
    }

    /// A timeout for JSON: nanoseconds, or null when off.
    private static func timeout(_ nanoseconds: UInt64) -> JSONValue {
        nanoseconds == .max ? .null : .int(Int(clamping: nanoseconds))
    }

    /// `timeouts 15 s idle, 60 s active`.
    static func timeoutsText(_ timeouts: FlowTimeouts) -> String {
        var parts: [String] = []
        if let idle = seconds(timeouts.idleNanoseconds) { parts.append("\(idle) s idle") }
        if let active = seconds(timeouts.activeNanoseconds) { parts.append("\(active) s active") }
        return "timeouts " + parts.joined(separator: ", ")
    }

    /// A timeout in seconds, as short as it can be written; nil when off.
    static func seconds(_ nanoseconds: UInt64) -> String? {
        guard nanoseconds != .max else { return nil }
        let seconds = Double(nanoseconds) / 1e9
        return seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }

    /// TCP flags as argus and nfdump print them (`UAPRSF`, `.` for unset).
    static func tcpFlags(_ flags: UInt8) -> String {
        var text = TextBuffer(capacity: 6)
        text.append(tcpFlags: flags)
        return text.text
    }

    /// The flags `tcpFlags` shows, in order, with their letters.
    static let flagLetters: [(UInt8, UInt8)] = [
        (0x20, UInt8(ascii: "U")), (0x10, UInt8(ascii: "A")), (0x08, UInt8(ascii: "P")), (0x04, UInt8(ascii: "R")),
        (0x02, UInt8(ascii: "S")), (0x01, UInt8(ascii: "F")),
    ]

    private static func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
        address.isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        var fraction = String(Int(scaled) - whole * Int(scale))
        while fraction.count < decimals { fraction = "0" + fraction }
        return (value < 0 ? "-" : "") + String(whole) + (decimals > 0 ? "." + fraction : "")
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }
}
