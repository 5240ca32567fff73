// Endpoint tables (`--endpoints`) against tshark's own (`-z endpoints,…`), run live in the mode the
// reference tables were made in (../shared/oracle/README.md: only the L2–L4 dissectors, IP
// reassembly off): a synthesized capture and every 20th capture of ../shared/captures/tcpdump that
// the conversation tables are checked on. Skips with a message when tshark is not installed
// (.ci/run installs it).

import FlowMeter
import PacketWire
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct EndpointTests {
    /// Makes `directory` a tshark configuration for per-packet L2–L4 dissection: every other
    /// dissector disabled, IPv4 and IPv6 reassembly off.
    static func makeConfiguration(_ directory: String) -> Bool {
        let kept =
            "^(frame|pkt_comment|_ws\\..*|eth|ethertype|vlan|ieee8021ad|arp|ip|ip\\.options\\..*|ipv6|"
            + "ipv6\\.(hopopts|dstopts|fraghdr|routing)(\\..*)?|tcp|tcp\\.options\\..*|udp|icmp|icmpv6|sll|llc|"
            + "data|raw|null|ppp)$"
        let script =
            "mkdir -p '\(directory)' && tshark -G protocols 2>/dev/null | awk -F'\\t' '{print $3}' "
            + "| grep -vE '\(kept)' | sort -u > '\(directory)/disabled_protos' "
            + "&& printf 'ip.defragment: FALSE\\nipv6.defragment: FALSE\\n' > '\(directory)/preferences'"
        return Shell.run(script)?.status == 0
    }

    /// tshark's four endpoint tables of `path`, each row `address port frames bytes tx… rx…`.
    static func tshark(_ path: String, configuration: String) -> [ConversationKind: Set<String>]? {
        let command =
            "WIRESHARK_CONFIG_DIR='\(configuration)' tshark -n -q -r '\(path)' "
            + "-z endpoints,ip -z endpoints,ipv6 -z endpoints,tcp -z endpoints,udp 2>/dev/null"
        guard let run = Shell.run(command), run.status == 0 else { return nil }
        let sections: [Substring: ConversationKind] = [
            "IPv4 Endpoints": .ip, "IPv6 Endpoints": .ipv6, "TCP Endpoints": .tcp, "UDP Endpoints": .udp,
        ]
        var tables: [ConversationKind: Set<String>] = [:]
        var current: ConversationKind?
        for line in run.output.split(separator: "\n") {
            if let kind = sections[line] {
                current = kind
                continue
            }
            guard let kind = current else { continue }
            let fields = line.split(separator: " ")
            let ports = kind == .tcp || kind == .udp
            // Rows only: an address and six (with a port, seven) counts; headers and rules are not.
            guard fields.count == (ports ? 8 : 7), fields.dropFirst().allSatisfy({ Int($0) != nil }),
                let address = IPAddress(String(fields[0]))
            else { continue }
            let counts = fields.dropFirst(ports ? 2 : 1).joined(separator: " ")
            tables[kind, default: []].insert("\(address) \(ports ? fields[1] : "0") \(counts)")
        }
        return tables
    }

    static func ours(_ result: ReplayResult, _ kind: ConversationKind) -> Set<String> {
        Set(
            result.endpoints(kind).map {
                "\($0.address) \($0.port) \($0.frames) \($0.bytes) \($0.framesSent) \($0.bytesSent) "
                    + "\($0.framesReceived) \($0.bytesReceived)"
            })
    }

    /// The tables that differ from tshark's for `path`, with a sample of the difference.
    static func differences(_ path: String, configuration: String) throws -> [String] {
        guard let theirs = Self.tshark(path, configuration: configuration) else { return ["tshark failed"] }
        let result = try Replay().run(files: [path])
        return ConversationKind.allCases.compactMap { kind in
            let ours = Self.ours(result, kind)
            let expected = theirs[kind, default: []]
            guard ours != expected else { return nil }
            return "\(kind.rawValue): ours-only \(Array(ours.subtracting(expected).prefix(2))) "
                + "tshark-only \(Array(expected.subtracting(ours).prefix(2)))"
        }
    }

    @Test func theCommandPrintsOneEndpointTableAsCSV() throws {
        let netisr = try CommandLineTests.netisr()
        let path = try SynthCapture.write(packets: 3_000, flows: 200, seed: 92, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let result = try Replay().run(files: [path])
        for kind in ConversationKind.allCases {
            let printed = try #require(Shell.run("'\(netisr)' replay '\(path)' --quiet --endpoints \(kind.rawValue)"))
            #expect(printed.status == 0)
            #expect(printed.output == ReplayReport.endpointsCSV(result, kind))
            let lines = printed.output.split(separator: "\n")
            #expect(lines.first == "address,port,frames,bytes,txFrames,txBytes,rxFrames,rxBytes")
            #expect(lines.count == result.endpoints(kind).count + 1 && lines.count > 10)
        }
        for wrong in ["--endpoints mac", "--endpoints ip --conversations ip", "--endpoints ip --flows -"] {
            #expect(Shell.run("'\(netisr)' replay '\(path)' \(wrong) 2>/dev/null")?.status != 0, "\(wrong)")
        }
    }

    /// The report's top endpoints are the IPv4 and IPv6 endpoint tables' largest by bytes (then
    /// by address), as many as asked, with what each sent and received.
    @Test func theReportListsTheLargestEndpoints() throws {
        let path = try SynthCapture.write(packets: 3_000, flows: 200, seed: 93, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let result = try Replay().run(files: [path])
        let all = (result.endpoints(.ip) + result.endpoints(.ipv6)).sorted {
            $0.bytes != $1.bytes ? $0.bytes > $1.bytes : $0.address < $1.address
        }
        #expect(all.count > 200)
        for count in [0, 1, 7, 50, all.count + 5] {
            let lines = ReplayReport.text(result, topConversations: count).split(
                separator: "\n", omittingEmptySubsequences: false)
            let title = try #require(lines.firstIndex { $0.hasPrefix("Top endpoints by bytes") })
            #expect(
                lines[title]
                    == "Top endpoints by bytes (\(result.endpoints(.ip).count) IPv4, \(result.endpoints(.ipv6).count) IPv6 addresses):"
            )
            let rows = lines[(title + 2)...].prefix { !$0.isEmpty }.map { $0.split(separator: " ").map(String.init) }
            let expected = all.prefix(count).map {
                [
                    $0.address.description, String($0.frames), String($0.bytes), String($0.bytesSent),
                    String($0.bytesReceived),
                ]
            }
            #expect(rows == expected, "top \(count)")
        }
    }

    @Test func endpointTablesMatchTshark() throws {
        guard Shell.has("tshark") else {
            print("tshark is not installed; skipping (.ci/run installs it)")
            return
        }
        let configuration = "/tmp/netisr-endpoints-wireshark-\(getpid())"
        defer { _ = Shell.run("rm -rf '\(configuration)'") }
        try #require(Self.makeConfiguration(configuration))
        let path = try SynthCapture.write(packets: 8_000, flows: 700, seed: 91, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        #expect(try Self.differences(path, configuration: configuration) == [])
        guard let root = SharedFixtures.root else {
            print(SharedFixtures.missingMessage)
            return
        }
        let captures = SharedFixtures.list("\(root)/captures/tcpdump").filter { capture in
            guard let encapsulation = SharedFixtures.summary(capture)?["encapsulation"] else { return false }
            return ReplayReferenceTests.supportedEncapsulations.contains(encapsulation)
                && ReplayReferenceTests.exceptions[capture] == nil
        }
        var compared = 0
        for capture in stride(from: 0, to: captures.count, by: 20).map({ captures[$0] }) {
            compared += 1
            let problems = try Self.differences("\(root)/captures/tcpdump/\(capture)", configuration: configuration)
            for problem in problems { Issue.record("\(capture): \(problem)") }
        }
        #expect(compared > 25)
    }
}
