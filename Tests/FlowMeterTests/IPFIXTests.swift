// Flow records as IPFIX: decoded back by a decoder that reads the templates from the messages
// (not from the encoder's tables), by tshark from an `.ipfix` file, and by nfdump's collector
// (nfcapd) from `--export` over UDP — each against the replay's own records.

import FlowMeter
import PacketWire
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct IPFIXTests {
    /// A synthesized capture (IPv4, IPv6, VLANs, TCP closes) and its replay.
    static func replayed(seed: UInt64, timeouts: FlowTimeouts = FlowTimeouts()) throws -> (
        path: String, result: ReplayResult
    ) {
        let path = try SynthCapture.write(packets: 4_000, flows: 600, seed: seed, format: .pcap(nanosecond: false))
        var configuration = ReplayConfiguration()
        configuration.flowTimeouts = timeouts
        return (path, try Replay(configuration).run(files: [path]))
    }

    /// What an IPFIX record must say about `flow`.
    static func expected(_ flow: FlowRecord) -> String {
        let key = flow.key
        let reason =
            switch flow.expiry {
            case .idleTimeout: 1
            case .activeTimeout: 2
            case .endOfFlow: 3
            case .tableFull: 5
            case .none: flow.tcpFlags & 0x05 != 0 ? 3 : 4
            }
        // An ICMP flow's type and code travel as its destination port too (NetFlow's way).
        let destinationPort = flow.icmpTypeCode ?? key.destinationPort
        return "\(key.source) \(key.sourcePort) \(key.destination) \(destinationPort) \(key.ipProtocol) "
            + "vlan \(flow.vlan ?? 0) ms \(flow.firstTimestamp / 1_000_000)-\(flow.lastTimestamp / 1_000_000) "
            + "fwd \(flow.packetsForward)/\(flow.bytesForward) rev \(flow.packetsReverse)/\(flow.bytesReverse) "
            + "flags \(flow.tcpFlagsForward)/\(flow.tcpFlagsReverse) end \(reason) icmp \(flow.icmpTypeCode ?? 0)"
    }

    @Test func recordsSurviveTheRoundTripInDatagramsAndInAFile() throws {
        let (path, result) = try Self.replayed(seed: 31)
        defer { unlink(path) }
        let flows = result.flowsInOrder()
        #expect(flows.contains { $0.key.source.isIPv6 } && flows.contains { $0.vlan != nil })
        #expect(flows.contains { $0.packetsReverse > 0 } && flows.contains { $0.tcpFlags & 0x01 != 0 })
        #expect(flows.contains { $0.tcpFlagsForward != $0.tcpFlagsReverse && $0.tcpFlagsReverse != 0 })

        var datagrams = IPFIXEncoder(observationDomain: 7, maximumMessageSize: 1_400, templates: .everyMessage)
        var messages: [[UInt8]] = []
        var counts: [Int] = []
        datagrams.encode(flows, exportTime: 1_800_000_000) { message, records in
            messages.append(message)
            counts.append(records)
        }
        var decoder = IPFIXDecoder()
        var sequence: UInt32 = 0
        var decoded: [String] = []
        for (message, count) in zip(messages, counts) {
            #expect(message.count <= 1_400)
            let outcome = decoder.decode(message)
            let parsed = try #require(outcome)
            #expect(parsed.hadTemplates && parsed.sequence == sequence && parsed.domain == 7)
            #expect(parsed.exportTime == 1_800_000_000 && parsed.records.count == count)
            sequence += UInt32(parsed.records.count)
            decoded += parsed.records
        }
        #expect(messages.count > 20)
        #expect(decoded == flows.map(Self.expected))
        #expect(datagrams.sequenceNumber == UInt32(flows.count))

        // A file: the largest messages, the templates once.
        var file = IPFIXEncoder(templates: .firstMessage)
        var fileMessages: [[UInt8]] = []
        file.encode(flows + flows + flows + flows, exportTime: 0) { message, _ in fileMessages.append(message) }
        var fileDecoder = IPFIXDecoder()
        var fromFile: [String] = []
        for (index, message) in fileMessages.enumerated() {
            #expect(message.count <= 65_535)
            let outcome = fileDecoder.decode(message)
            let parsed = try #require(outcome)
            #expect(parsed.hadTemplates == (index == 0))
            fromFile += parsed.records
        }
        #expect(fileMessages.count > 1)

        // No flows: a file still holds a message, of templates alone.
        var empty = IPFIXEncoder(templates: .firstMessage)
        var emptyMessages: [[UInt8]] = []
        empty.encode([], exportTime: 0) { message, _ in emptyMessages.append(message) }
        var emptyDecoder = IPFIXDecoder()
        let templatesOnly = emptyMessages.count == 1 ? emptyDecoder.decode(emptyMessages[0]) : nil
        #expect(templatesOnly?.hadTemplates == true && templatesOnly?.records == [])
        #expect(fromFile == (flows + flows + flows + flows).map(Self.expected))
    }

    @Test func theExporterSendsEveryRecordToTheCollector() throws {
        let (path, result) = try Self.replayed(seed: 32)
        defer { unlink(path) }
        let collector = try #require(UDPCollector())
        defer { close(collector.socket) }
        var exporter = try IPFIXExporter(destination: "127.0.0.1:\(collector.port)")
        let flows = result.flowsInOrder()
        let summary = exporter.export(flows, exportTime: 1)
        #expect(summary.records == flows.count && summary.failedDatagrams == 0 && summary.firstError == nil)
        var decoder = IPFIXDecoder()
        var records: [String] = []
        for datagram in collector.receive(count: summary.datagrams) {
            let message = decoder.decode(datagram)
            records += try #require(message).records
        }
        #expect(records == flows.map(Self.expected))
    }

    @Test(arguments: [
        "nonsense", "127.0.0.1", "127.0.0.1:0", "::1:4739", "127.0.0.1:70000", "no-such-host.invalid:4739",
    ])
    func aBadCollectorAddressIsOneClearError(destination: String) {
        #expect(throws: IPFIXExportError.self) { _ = try IPFIXExporter(destination: destination) }
    }

    /// Nothing listening: the report still comes, every datagram is tried, then one line and a
    /// non-zero status.
    @Test func anExportNobodyTakesFailsTheCommandAfterItsReport() throws {
        let netisr = try CommandLineTests.netisr()
        // Our socket holds the port on 127.0.0.1; nothing binds 127.0.0.3, so nothing listens there.
        let holder = try #require(UDPCollector())
        defer { close(holder.socket) }
        let port = holder.port
        let run = try #require(
            Shell.run("'\(netisr)' replay --quiet --export 127.0.0.3:\(port) 2>&1; echo \"status $?\""))
        #expect(run.output.contains("\nWorkstreams:\n"))
        #expect(run.output.contains("netisr: --export 127.0.0.3:\(port): send: Connection refused ("))
        #expect(run.output.contains(" datagrams of ") && run.output.contains(" records not sent)\n"))
        #expect(run.output.hasSuffix("status 1\n"))
    }

    @Test func tsharkReadsTheFileTheCommandWrites() throws {
        guard Shell.has("tshark") else {
            print("tshark is not installed; skipping (.ci/run installs it)")
            return
        }
        let netisr = try CommandLineTests.netisr()
        // With timeouts, so records end for each of the four reasons.
        let (path, result) = try Self.replayed(seed: 33, timeouts: FlowTimeouts(idle: 0.01, active: 0.003))
        let ipfix = path + ".ipfix"
        defer {
            unlink(path)
            unlink(ipfix)
        }
        #expect(Set(result.flows.map(\.expiry)) == [.none, .idleTimeout, .activeTimeout])
        let timeouts = "--idle-timeout 0.01 --active-timeout 0.003"
        #expect(
            Shell.run("'\(netisr)' replay '\(path)' --quiet \(timeouts) --flows '\(ipfix)' > /dev/null")?.status == 0)
        let pdml = try #require(Shell.run("tshark -r '\(ipfix)' -T pdml"))
        #expect(pdml.status == 0)
        #expect(TsharkFlows.parse(pdml.output) == result.flowsInOrder().map(Self.expected))
    }

    @Test func nfcapdCollectsWhatTheCommandExports() throws {
        guard Shell.has("nfcapd") && Shell.has("nfdump") else {
            print("nfdump's nfcapd is not installed; skipping (.ci/run installs it)")
            return
        }
        let netisr = try CommandLineTests.netisr()
        let (path, result) = try Self.replayed(seed: 34)
        let directory = "/tmp/netisr-nfcapd-\(getpid())"
        defer {
            unlink(path)
            _ = Shell.run("rm -rf '\(directory)'")
        }
        // Our socket holds the port on 127.0.0.1, so no other test takes it; nfcapd listens on
        // 127.0.0.2 with the same port.
        let holder = try #require(UDPCollector())
        defer { close(holder.socket) }
        let port = holder.port
        let digits = String(port, radix: 16, uppercase: true)
        let hexPort = String(repeating: "0", count: max(0, 4 - digits.count)) + digits  // as /proc/net/udp shows it
        // Started, waited for until its socket is bound, sent to, waited for until its socket's
        // receive queue is empty (stopped earlier, it drops what it has not read), stopped (it
        // writes its file then). /proc/net/udp: local address is column 2, tx:rx queues column 5.
        let queue = "awk '$2 == \"0200007F:\(hexPort)\" { split($5, q, \":\"); print q[2] }' /proc/net/udp"
        let script = """
            mkdir -p '\(directory)' && { nfcapd -w '\(directory)' -b 127.0.0.2 -p \(port) > /dev/null 2>&1 & pid=$!; }
            for i in $(seq 100); do [ -n "$(\(queue))" ] && break; sleep 0.1; done
            '\(netisr)' replay '\(path)' --quiet --export 127.0.0.2:\(port) > /dev/null; status=$?
            for i in $(seq 100); do [ "$(\(queue))" = 00000000 ] && break; sleep 0.1; done
            sleep 0.2; kill -TERM $pid; wait $pid
            nfdump -R '\(directory)' -q -6 -o 'fmt:%sa %sp %da %dp %pr %ipkt %ibyt %opkt %obyt %svln %flg'
            exit $status
            """
        let collected = try #require(Shell.run(script))
        #expect(collected.status == 0)
        let rows = collected.output.split(separator: "\n").map { row in
            row.split(separator: " ").enumerated().map { column, text in
                column == 0 || column == 2
                    ? IPAddress(String(text)).map(String.init(describing:)) ?? String(text) : String(text)
            }.joined(separator: " ")
        }
        let protocolNames: [UInt8: String] = [6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMP6"]
        let expected = result.flowsInOrder().map { flow in
            let key = flow.key
            // nfdump shows an ICMP flow's destination port as type.code: the first message's.
            let icmp = key.ipProtocol == 1 || key.ipProtocol == 58
            let typeCode = flow.icmpTypeCode ?? 0
            let destinationPort = icmp ? "\(typeCode >> 8).\(typeCode & 0xFF)" : String(key.destinationPort)
            return "\(key.source) \(key.sourcePort) \(key.destination) \(destinationPort) "
                + "\(protocolNames[key.ipProtocol, default: String(key.ipProtocol)]) "
                + "\(flow.packetsForward) \(flow.bytesForward) \(flow.packetsReverse) \(flow.bytesReverse) "
                // nfdump shows one set of flags: the initiator's.
                + "\(flow.vlan ?? 0) \(Self.nfdumpFlags(flow.tcpFlagsForward))"
        }
        #expect(rows.sorted() == expected.sorted())
    }

    /// nfdump's eight flag letters (CWR ECE URG ACK PSH RST SYN FIN), `.` where unset.
    static func nfdumpFlags(_ flags: UInt8) -> String {
        String(Array("CEUAPRSF").enumerated().map { flags & (0x80 >> $0.offset) != 0 ? $0.element : "." })
    }
}

/// Reads IPFIX messages the way a collector does: templates from template sets, then data
/// records by their template's fields. Knows the elements our records use.
struct IPFIXDecoder {
    struct Field {
        var element: UInt16
        var length: Int
        var enterprise: UInt32?
    }
    var templates: [UInt16: [Field]] = [:]

    struct Message {
        var sequence: UInt32
        var domain: UInt32
        var exportTime: UInt32
        var hadTemplates = false
        var records: [String] = []
    }

    mutating func decode(_ bytes: [UInt8]) -> Message? {
        func integer(_ at: Int, _ length: Int) -> UInt64 {
            bytes[at..<at + length].reduce(0) { $0 << 8 | UInt64($1) }
        }
        guard bytes.count >= 16, integer(0, 2) == 10, integer(2, 2) == bytes.count else { return nil }
        var message = Message(
            sequence: UInt32(integer(8, 4)), domain: UInt32(integer(12, 4)), exportTime: UInt32(integer(4, 4)))
        var offset = 16
        while offset + 4 <= bytes.count {
            let setID = UInt16(integer(offset, 2))
            let end = offset + Int(integer(offset + 2, 2))
            guard end > offset + 4, end <= bytes.count else { return nil }
            var cursor = offset + 4
            if setID == 2 {
                message.hadTemplates = true
                while cursor + 4 <= end {
                    let id = UInt16(integer(cursor, 2))
                    let count = Int(integer(cursor + 2, 2))
                    cursor += 4
                    var fields: [Field] = []
                    for _ in 0..<count {
                        let element = UInt16(integer(cursor, 2))
                        var field = Field(element: element & 0x7FFF, length: Int(integer(cursor + 2, 2)))
                        cursor += 4
                        if element & 0x8000 != 0 {
                            field.enterprise = UInt32(integer(cursor, 4))
                            cursor += 4
                        }
                        fields.append(field)
                    }
                    templates[id] = fields
                }
            } else {
                guard let fields = templates[setID] else { return nil }
                let length = fields.reduce(0) { $0 + $1.length }
                while cursor + length <= end {
                    var values: [String: UInt64] = [:]
                    var addresses: [String: IPAddress] = [:]
                    for field in fields {
                        let name = (field.enterprise == 29_305 ? "r" : "") + String(field.element)
                        if field.length == 16 {
                            addresses[name] = IPAddress(ipv6High: integer(cursor, 8), low: integer(cursor + 8, 8))
                        } else if field.element == 8 || field.element == 12 {
                            addresses[name] = IPAddress(ipv4: UInt32(integer(cursor, 4)))
                        } else {
                            values[name] = integer(cursor, field.length)
                        }
                        cursor += field.length
                    }
                    let source = addresses["8"] ?? addresses["27"]
                    let destination = addresses["12"] ?? addresses["28"]
                    func value(_ name: String) -> String { values[name].map(String.init) ?? "?" }
                    message.records.append(
                        "\(source.map(String.init(describing:)) ?? "?") \(value("7")) "
                            + "\(destination.map(String.init(describing:)) ?? "?") \(value("11")) \(value("4")) "
                            + "vlan \(value("58")) ms \(value("152"))-\(value("153")) fwd \(value("2"))/\(value("1")) "
                            + "rev \(value("r2"))/\(value("r1")) flags \(value("6"))/\(value("r6")) end \(value("136")) "
                            + "icmp \(values["32"] == nil ? value("139") : value("32"))"
                    )
                }
            }
            offset = end
        }
        return offset == bytes.count ? message : nil
    }
}

/// The flow records in tshark's PDML of an IPFIX file, in the form `IPFIXTests.expected` gives.
enum TsharkFlows {
    static func parse(_ pdml: String) -> [String] {
        var records: [[String: [String]]] = []
        for line in pdml.split(separator: "\n") {
            if line.contains("show=\"Flow ") {
                records.append([:])
                continue
            }
            guard !records.isEmpty, let name = attribute("name", line), name.hasPrefix("cflow."),
                let shown = attribute(
                    name == "cflow.abstimestart" || name == "cflow.abstimeend" ? "value" : "show", line)
            else { continue }
            records[records.count - 1][name, default: []].append(shown)
        }
        return records.map { record in
            func field(_ name: String, _ index: Int = 0) -> String {
                guard let values = record[name], index < values.count else { return "?" }
                return values[index]
            }
            func milliseconds(_ name: String) -> String { UInt64(field(name), radix: 16).map(String.init) ?? "?" }
            let source = record["cflow.srcaddr"] != nil ? field("cflow.srcaddr") : field("cflow.srcaddrv6")
            let destination = record["cflow.dstaddr"] != nil ? field("cflow.dstaddr") : field("cflow.dstaddrv6")
            // tshark shows icmpTypeCodeIPv4 as one hex number, icmpTypeCodeIPv6 as type and code.
            let icmp =
                record["cflow.icmp_type_code_ipv4"] != nil
                ? UInt16(field("cflow.icmp_type_code_ipv4").dropFirst(2), radix: 16).map(String.init) ?? "?"
                : UInt16(field("cflow.icmp_ipv6_type")).flatMap { type in
                    UInt16(field("cflow.icmp_ipv6_code")).map { String(type << 8 | $0) }
                } ?? "?"
            // The record holds the reverse flags first (see IPFIXEncoder.fields), then the forward ones.
            func flags(_ index: Int) -> String {
                UInt8(field("cflow.tcpflags", index).dropFirst(2), radix: 16).map(String.init) ?? "?"
            }
            return "\(IPAddress(source).map(String.init(describing:)) ?? source) \(field("cflow.srcport")) "
                + "\(IPAddress(destination).map(String.init(describing:)) ?? destination) \(field("cflow.dstport")) "
                + "\(field("cflow.protocol")) vlan \(field("cflow.vlanid")) "
                + "ms \(milliseconds("cflow.abstimestart"))-\(milliseconds("cflow.abstimeend")) "
                + "fwd \(field("cflow.packets"))/\(field("cflow.octets")) "
                + "rev \(field("cflow.packets", 1))/\(field("cflow.octets", 1)) flags \(flags(1))/\(flags(0)) "
                + "end \(field("cflow.flow_end_reason")) icmp \(icmp)"
        }
    }

    static func attribute(_ name: String, _ line: Substring) -> String? {
        guard let start = line.firstRange(of: " \(name)=\"") else { return nil }
        let rest = line[start.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }
}

/// A UDP socket on the loopback, on a port of the kernel's choosing.
struct UDPCollector {
    let socket: Int32
    let port: UInt16

    init?() {
        let descriptor = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var size: Int32 = 8 << 20
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard descriptor >= 0, bound else { return nil }
        socket = descriptor
        port = UInt16(bigEndian: address.sin_port)
    }

    /// Up to `count` datagrams, waiting at most a second for each.
    func receive(count: Int) -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        for _ in 0..<count {
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 1_000) > 0 else { break }
            let length = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard length > 0 else { break }
            datagrams.append(Array(buffer[0..<length]))
        }
        return datagrams
    }
}
