// ReplayReport+Services: the report's top services — TCP and UDP conversations summed by the port
// of the side that did not send first (B, the responder: a server's port), as flow tools' "top
// destination ports" tables are. Computed from the conversation tables when the report is made.

extension ReplayReport {
    /// The TCP or UDP conversations with one responder port, summed.
    struct Service: Equatable {
        var kind: ConversationKind
        var port: UInt16
        var conversations = 0
        var frames = 0
        var bytes = 0
    }

    /// Every TCP and UDP responder port with its conversations, frames and bytes, unordered.
    static func services(_ result: ReplayResult) -> [Service] {
        var services: [Service] = []
        for kind in [ConversationKind.tcp, .udp] {
            // Found through a slot per port rather than a Dictionary: the 100k TCP and UDP
            // conversations of the benchmark capture took 10–19 ms, now 1.5.
            var slot = [Int32](repeating: -1, count: 1 << 16)
            for row in result.conversations[kind, default: []] {
                var at = Int(slot[Int(row.portB)])
                if at < 0 {
                    at = services.count
                    slot[Int(row.portB)] = Int32(at)
                    services.append(Service(kind: kind, port: row.portB))
                }
                services[at].conversations += 1
                services[at].frames += row.frames
                services[at].bytes += row.bytes
            }
        }
        return services
    }

    /// The report's section: the `count` services with the most bytes.
    static func servicesText(_ result: ReplayResult, _ count: Int) -> String {
        let all = services(result)
        let tcpPorts = all.filter { $0.kind == .tcp }.count
        var out = "\nTop services by bytes (the port of the side that did not send first; \(tcpPorts) TCP, "
        out += "\(all.count - tcpPorts) UDP ports):\n"
        out +=
            pad("proto", 6) + pad("port", 6, right: true) + pad("conversations", 15, right: true)
            + pad("frames", 10, right: true) + pad("bytes", 12, right: true) + "\n"
        let top = largest(count, of: all) { a, b in
            a.bytes != b.bytes ? a.bytes > b.bytes : (a.kind.rawValue, a.port) < (b.kind.rawValue, b.port)
        }
        for service in top {
            out +=
                pad(service.kind.rawValue, 6) + pad(String(service.port), 6, right: true)
                + pad(String(service.conversations), 15, right: true) + pad(String(service.frames), 10, right: true)
                + pad(String(service.bytes), 12, right: true) + "\n"
        }
        return out
    }
}
