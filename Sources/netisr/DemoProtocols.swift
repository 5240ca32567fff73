// The demo's protocols and its packet source. Packets carry a one-byte "ethertype" tag in a
// shared static buffer, so the demo allocates nothing per packet.

import NetISR

/// Per-workstream flow counters: each workstream writes only its own table.
final class DemoFlowTables: @unchecked Sendable {  // unchecked: table N is touched only by workstream N's handler calls
    private var tables: [[UInt32: Int]]

    init(workstreams: Int) { tables = Array(repeating: [:], count: workstreams) }

    func count(flow: UInt32, on workstream: Int) { tables[workstream][flow, default: 0] += 1 }

    func merged() -> [UInt32: Int] {
        tables.reduce(into: [:]) { result, table in result.merge(table, uniquingKeysWith: +) }
    }
}

enum DemoProtocols {
    static let ip: ProtocolNumber = 1
    static let arp: ProtocolNumber = 7
    static let ether: ProtocolNumber = 9
    static let ip6: ProtocolNumber = 10

    /// One byte per kind of frame: 0 IPv4, 1 IPv6, 2 ARP. Written once here, only read afterwards.
    nonisolated(unsafe) private static let tags: UnsafeMutableRawBufferPointer = {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 3, alignment: 1)
        for index in 0..<3 { buffer[index] = UInt8(index) }
        return buffer
    }()

    static func register(on engine: NetISR, tables: DemoFlowTables, queueLimit: Int) throws {
        try engine.register(
            ProtocolRegistration(name: "ether", number: ether, queueLimit: queueLimit, dispatchPolicy: .direct) {
                burst in
                engine.dispatch(&burst, whenFull: .wait) { packet in
                    switch packet.bytes.first {
                    case 0: ip
                    case 1: ip6
                    default: arp
                    }
                }
            })
        for (name, number) in [("ip", ip), ("ip6", ip6), ("arp", arp)] {
            try engine.register(
                ProtocolRegistration(name: name, number: number, queueLimit: queueLimit, ordering: .flow()) { burst in
                    while let packet = burst.next() { tables.count(flow: packet.flowID ?? 0, on: burst.workstreamID) }
                })
        }
    }

    static func send(packets: Int, flows: Int, to engine: NetISR) {
        var batch = PacketBatch(capacity: 32)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for index in 0..<packets {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let flow = UInt32(truncatingIfNeeded: state >> 33) % UInt32(flows)
            let kind = flow % 16 == 0 ? 2 : (flow % 4 == 0 ? 1 : 0)
            let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(tags)[kind..<(kind + 1)])
            _ = batch.append(
                Packet(
                    bytes: bytes, wireLength: 64, sourceID: 0, flowID: flow &* 2_654_435_761, timestamp: UInt64(index)))
            if batch.isFull { engine.dispatch(ether, batch: &batch, whenFull: .wait) }
        }
        engine.dispatch(ether, batch: &batch, whenFull: .wait)
    }
}
