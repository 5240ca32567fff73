// The wire-format workload: parse + classify + flow key + symmetric Toeplitz hash per packet,
// on one core, over an in-memory capture of synthetic traffic (built before measuring).

import CPeers
import PacketWire

/// Frames laid out back to back, as a capture would hold them in memory.
final class InMemoryTraffic: @unchecked Sendable {  // unchecked: immutable after init
    let bytes: [UInt8]
    let offsets: [Int]

    init(packets: Int, flows: Int) {
        var bytes: [UInt8] = []
        var offsets: [Int] = [0]
        var synthesizer = TrafficSynthesizer(.init(packets: packets, flows: flows, seed: 11))
        synthesizer.generate { frame, _ in
            bytes.append(contentsOf: frame)
            offsets.append(bytes.count)
        }
        self.bytes = bytes
        self.offsets = offsets
    }

    var count: Int { offsets.count - 1 }
}

enum WireWorkload {
    static let hasher = ToeplitzHash()

    /// Nanoseconds per packet for parsing every frame `rounds` times.
    static func parseClassifyKeyHash(_ traffic: InMemoryTraffic, rounds: Int) -> Double {
        var checksum: UInt64 = 0
        var summary = PacketSummary()
        let began = peer_now_ns()
        traffic.bytes.withUnsafeBytes { all in
            traffic.offsets.withUnsafeBufferPointer { offsets in
                for _ in 0..<rounds {
                    for index in 0..<(offsets.count - 1) {
                        let frame = UnsafeRawBufferPointer(rebasing: all[offsets[index]..<offsets[index + 1]])
                        PacketParser.parse(frame, linkType: .ethernet, into: &summary)
                        if let flow = summary.flow {
                            checksum &+= UInt64(hasher.symmetricHash(flow, includePorts: flow.sourcePort != 0))
                        }
                        checksum &+= summary.transport == .tcp ? 1 : 0
                    }
                }
            }
        }
        let ended = peer_now_ns()
        blackHole(checksum)
        return Double(ended - began) / Double(rounds * traffic.count)
    }
}
