// Every capture in ../shared/captures/tcpdump (tcpdump's own test files, many malformed on
// purpose): never a crash or hang; for every one of a supported link type that tshark reads,
// frames, wire bytes and the l3/l4 table equal tshark's (../shared/captures/reference). On every
// frame, the short parse a replay's reader does (`parseFlowAddresses`) agrees with the full one,
// and its network protocol with the link-layer walk (`networkProtocol`) it spares ether; so does
// the reader's fixed-offset paths for Ethernet and IPv4 or IPv6 where they answer,
// and the full parse (fixed offsets for the commonest frames) equals the header walk.

import TestSupport
import Testing

@testable import PacketWire

@Suite struct ReferenceCaptureTests {
    static let supportedEncapsulations: Set<String> = [
        "ether", "linux-sll", "linux-sll2", "rawip", "rawip4", "rawip6", "null", "ppp",
    ]

    /// Captures whose results differ from tshark's for a known reason, with that reason.
    static let exceptions: [String: String] = [:]

    struct Result {
        var frames = 0
        var wireBytes = 0
        var capturedBytes = 0
        var table: [String: Int] = [:]
        var error: CaptureError?
        /// Frames whose `parseFlowAddresses` disagreed with the full parse (network, addresses,
        /// IP protocol) or with `networkProtocol`.
        var flowAddressMismatches = 0
        /// Frames whose `parse` differed from the header walk (`PacketParser.walk`).
        var walkMismatches = 0
    }

    static func read(_ path: String) -> Result {
        var result = Result()
        var addresses = PacketSummary()
        var walked = PacketSummary()
        do {
            let reader = try CaptureReader(path: path)
            while try reader.read(
                maximum: 256,
                { record in
                    result.frames += 1
                    result.wireBytes += record.originalLength
                    result.capturedBytes += record.bytes.count
                    let summary = PacketParser.parse(record.bytes, linkType: record.linkType)
                    PacketParser.walk(record.bytes, linkType: record.linkType, into: &walked)
                    if !sameParse(summary, walked) { result.walkMismatches += 1 }
                    result.table["\(summary.network.rawValue),\(summary.transport.rawValue)", default: 0] += 1
                    PacketParser.parseFlowAddresses(record.bytes, linkType: record.linkType, into: &addresses)
                    let full = summary.flow.map { ($0.source, $0.destination, $0.ipProtocol) }
                    let partial = addresses.flow.map { ($0.source, $0.destination, $0.ipProtocol) }
                    let linkWalk = PacketParser.networkProtocol(record.bytes, linkType: record.linkType)
                    if addresses.network != summary.network || linkWalk != addresses.network
                        || full?.0 != partial?.0 || full?.1 != partial?.1
                        || full?.2 != partial?.2
                        || (addresses.flow.map { $0.sourcePort | $0.destinationPort } ?? 0) != 0
                        || !Self.fixedOffsetsAgree(record.bytes, linkType: record.linkType, with: addresses)
                    {
                        result.flowAddressMismatches += 1
                    }
                }) > 0
            {}
        } catch let error as CaptureError {
            result.error = error
        } catch {
            Issue.record("unexpected error \(error)")
        }
        return result
    }

    /// Whether the reader's fixed-offset paths (`ethernetIPv4Addresses`, `ethernetIPv6Addresses`),
    /// where they answer, give
    /// what `parseFlowAddresses` found.
    static func fixedOffsetsAgree(
        _ bytes: UnsafeRawBufferPointer, linkType: LinkType, with addresses: PacketSummary
    ) -> Bool {
        guard linkType == .ethernet else { return true }
        if let pair = PacketParser.ethernetIPv4Addresses(bytes) {
            return addresses.network == .ipv4 && addresses.flow?.source == IPAddress(ipv4: pair.source)
                && addresses.flow?.destination == IPAddress(ipv4: pair.destination)
        }
        if let pair = PacketParser.ethernetIPv6Addresses(bytes) {
            return addresses.network == .ipv6 && addresses.flow?.source == pair.source
                && addresses.flow?.destination == pair.destination
        }
        return true
    }

    @Test func everyCaptureIsReadWithoutCrashingAndMatchesTshark() throws {
        guard let root = SharedFixtures.root else {
            print(SharedFixtures.missingMessage)
            return
        }
        let captures = SharedFixtures.list("\(root)/captures/tcpdump")
        #expect(captures.count > 800)
        var compared = 0
        var mismatches: [String] = []
        var flowAddressMismatches = 0
        var walkMismatches = 0
        for capture in captures {
            let result = Self.read("\(root)/captures/tcpdump/\(capture)")
            flowAddressMismatches += result.flowAddressMismatches
            walkMismatches += result.walkMismatches
            guard let summary = SharedFixtures.summary(capture),
                let encapsulation = summary["encapsulation"], Self.supportedEncapsulations.contains(encapsulation),
                let frames = summary["frames"].flatMap(Int.init), let wire = summary["wire_bytes"].flatMap(Int.init)
            else { continue }
            compared += 1
            var table: [String: Int] = [:]
            let csv = SharedFixtures.read("\(root)/captures/reference/\(capture)/l3l4.csv") ?? ""
            for line in csv.split(separator: "\n").dropFirst() {
                let parts = line.split(separator: ",")
                if parts.count == 3, let count = Int(parts[2]) { table["\(parts[0]),\(parts[1])"] = count }
            }
            var problems: [String] = []
            if result.frames != frames { problems.append("frames \(result.frames) ≠ \(frames)") }
            if result.wireBytes != wire { problems.append("wire bytes \(result.wireBytes) ≠ \(wire)") }
            if result.table != table {
                let keys = Set(result.table.keys).union(table.keys).sorted()
                let diff = keys.filter { result.table[$0] != table[$0] }.map {
                    "\($0): ours \(result.table[$0] ?? 0) tshark \(table[$0] ?? 0)"
                }
                problems.append("l3l4 " + diff.joined(separator: "; "))
            }
            if !problems.isEmpty && Self.exceptions[capture] == nil {
                let error = result.error.map { " [reader: \($0)]" } ?? ""
                mismatches.append("\(capture) (\(encapsulation)): " + problems.joined(separator: " | ") + error)
            }
        }
        #expect(compared > 500)
        // The reader's short parse (RSS placement) sees what the full parse sees, on every frame.
        #expect(flowAddressMismatches == 0)
        #expect(walkMismatches == 0)
        for mismatch in mismatches { Issue.record("\(mismatch)") }
        print("compared \(compared) captures with tshark; \(mismatches.count) mismatches")
    }
}
