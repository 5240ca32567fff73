// `netisr hash`: the Toeplitz RSS hash of a flow and the workstream it maps to — the question
// every RSS user asks ("which queue will this flow land on?").

import ArgumentParser
import NetISR
import PacketWire

struct Hash: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "Print the Toeplitz RSS hash of a flow (8 hex digits) and the workstream it maps to.")

    @Option(name: .long, help: "Source address (IPv4 or IPv6).")
    var src: String

    @Option(name: .long, help: "Destination address (same family as --src).")
    var dst: String

    @Option(name: .long, help: "Source port (with --dport: hash the 4-tuple).")
    var sport: UInt16?

    @Option(name: .long, help: "Destination port.")
    var dport: UInt16?

    @Option(name: .long, help: "RSS key as hex (default: Microsoft's 40-byte key).")
    var key: String?

    @Option(name: .long, help: "Workstreams to map onto (hash mod N).")
    var workstreams: Int = 2

    @Flag(name: .long, help: "Hash the direction-free form, as netisr's flow ordering does.")
    var symmetric = false

    func validate() throws {
        guard IPAddress(src) != nil else { throw ValidationError("--src \(src) is not an IPv4 or IPv6 address") }
        guard let destination = IPAddress(dst) else { throw ValidationError("--dst \(dst) is not an IP address") }
        guard IPAddress(src)!.isIPv6 == destination.isIPv6 else {
            throw ValidationError("--src and --dst must be the same address family")
        }
        guard (sport == nil) == (dport == nil) else {
            throw ValidationError("give both --sport and --dport, or neither")
        }
        guard workstreams >= 1 else { throw ValidationError("--workstreams must be at least 1") }
        if let key {
            guard let bytes = Self.hexBytes(key) else {
                throw ValidationError("--key must be an even number of hex digits")
            }
            let needed = IPAddress(src)!.isIPv6 ? 40 : 16
            guard bytes.count >= needed else {
                throw ValidationError("--key must be at least \(needed) bytes for this flow (got \(bytes.count))")
            }
        }
    }

    func run() throws {
        let hasher = ToeplitzHash(key: key.flatMap(Self.hexBytes) ?? ToeplitzHash.microsoftKey)
        let flow = FlowKey(
            source: IPAddress(src)!, destination: IPAddress(dst)!, sourcePort: sport ?? 0, destinationPort: dport ?? 0,
            ipProtocol: 6)
        let withPorts = sport != nil
        let value =
            symmetric ? hasher.symmetricHash(flow, includePorts: withPorts) : hasher.hash(flow, includePorts: withPorts)
        let hex = String(value, radix: 16)
        print(String(repeating: "0", count: 8 - hex.count) + hex)
        let workstream = WorkstreamMap(workstreamCount: workstreams).workstream(forFlowID: value)
        print("workstream \(workstream) of \(workstreams)")
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.hasPrefix("0x") ? text.dropFirst(2) : Substring(text)).filter { $0 != ":" }
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = 0
        while index < digits.count {
            guard let byte = UInt8(String(digits[index...index + 1]), radix: 16) else { return nil }
            bytes.append(byte)
            index += 2
        }
        return bytes
    }
}
