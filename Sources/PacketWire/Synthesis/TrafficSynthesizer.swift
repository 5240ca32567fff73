// TrafficSynthesizer: deterministic, realistic-looking traffic for samples and benchmarks.
//
// Flow sizes are heavy-tailed (Pareto, α = 1.2: most flows are a few packets, a few carry most
// of the bytes). TCP flows open with a three-way handshake and close with FIN/ACK; UDP flows
// alternate request and response; ICMP flows are echo request/reply. A fifth of the flows are
// IPv6 and a tenth carry an 802.1Q tag. Flows interleave at random; timestamps advance by
// exponential gaps. Everything follows from the seed, so the same arguments give the same bytes.
// Only addresses set aside for such use appear: clients in 10.0.0.0/8 (RFC 1918), servers in
// 198.18.0.0/15 (RFC 2544's benchmarking range), IPv6 in 2001:db8::/32 (RFC 3849); servers
// listen on ports their transport is used on (no NTP over TCP).
// Frames are built in one reused buffer: nothing is allocated per packet.

/// Generates synthetic Ethernet traffic.
public struct TrafficSynthesizer {
    /// What to generate.
    public struct Parameters: Sendable {
        /// Total packets.
        public var packets: Int
        /// Distinct flows (conversations).
        public var flows: Int
        /// Random seed.
        public var seed: UInt64
        /// Capture start time, nanoseconds since the epoch.
        public var startTime: UInt64 = 1_700_000_000_000_000_000
        /// Mean gap between packets in nanoseconds.
        public var meanGap: UInt64 = 10_000

        /// Creates parameters.
        public init(packets: Int, flows: Int, seed: UInt64 = 1) {
            self.packets = packets
            self.flows = flows
            self.seed = seed
        }
    }

    fileprivate enum Kind { case tcp, udp, icmp }

    fileprivate struct Flow {
        var kind: Kind
        var ipv6: Bool
        var vlan: UInt16?
        var client: UInt32
        var server: UInt32
        var clientPort: UInt16
        var serverPort: UInt16
        var total: Int
        var sent = 0
    }

    private var random: SplitMix
    private let parameters: Parameters
    private var flows: [Flow] = []
    private var active: [Int] = []
    private var frame = [UInt8](repeating: 0, count: 1_600)
    private var clock: UInt64

    /// Prepares a generator; nothing is generated until `generate(_:)`.
    public init(_ parameters: Parameters) {
        self.parameters = parameters
        random = SplitMix(state: parameters.seed)
        clock = parameters.startTime
        let flowCount = max(1, min(parameters.flows, max(1, parameters.packets)))
        // Pareto sizes, then scaled so they add up to the packet count exactly.
        var sizes = (0..<flowCount).map { _ in 1.0 / pow12(random.unit()) }
        let scale = Double(parameters.packets) / sizes.reduce(0, +)
        sizes = sizes.map { $0 * scale }
        var counts = sizes.map { max(1, Int($0)) }
        var difference = parameters.packets - counts.reduce(0, +)
        var index = 0
        while difference != 0 {
            if difference > 0 {
                counts[index % flowCount] += 1
                difference -= 1
            } else if counts[index % flowCount] > 1 {
                counts[index % flowCount] -= 1
                difference += 1
            }
            index += 1
            if index > 10 * flowCount + parameters.packets { break }
        }
        for (number, count) in counts.enumerated() {
            let roll = random.below(100)
            let kind: Kind = roll < 70 ? .tcp : (roll < 93 ? .udp : .icmp)
            let servers: [UInt16] = [443, 80, 53, 22, 8080, 25, 993, 5060]
            flows.append(
                Flow(
                    kind: kind, ipv6: random.below(5) == 0,
                    vlan: random.below(10) == 0 ? UInt16(10 + random.below(90)) : nil,
                    client: 0x0A00_0000 | UInt32(number & 0xFFFF) << 8 | UInt32(1 + random.below(250)),
                    server: 0xC612_0000 | UInt32(random.below(4096)),
                    clientPort: UInt16(1_024 + (number % 60_000)),
                    serverPort: kind == .udp
                        ? [53, 123, 5060, 443][random.below(4)] : servers[random.below(servers.count)],
                    total: count))
            if parameters.packets > 0 { active.append(number) }
        }
    }

    /// Generates every packet, calling `emit` with each frame (valid during the call) and its
    /// timestamp.
    public mutating func generate(_ emit: (UnsafeRawBufferPointer, UInt64) throws -> Void) rethrows {
        var produced = 0
        while produced < parameters.packets, !active.isEmpty {
            let slot = random.below(active.count)
            let index = active[slot]
            var flow = flows[index]
            let length = build(&flow)
            flow.sent += 1
            flows[index] = flow
            if flow.sent >= flow.total {
                active.swapAt(slot, active.count - 1)
                active.removeLast()
            }
            clock &+= exponentialGap()
            let time = clock
            try frame.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<length]), time) }
            produced += 1
        }
    }

    private mutating func exponentialGap() -> UInt64 {
        let unit = max(random.unit(), 1e-12)
        return UInt64(-logApprox(unit) * Double(parameters.meanGap))
    }

    /// Writes the flow's next frame into `frame`; returns its length.
    private mutating func build(_ flow: inout Flow) -> Int {
        let step = flow.sent
        var fromClient = true
        var flags: UInt8 = 0x10
        var payload = 0
        switch flow.kind {
        case .tcp:
            let closing = flow.total >= 6 && step >= flow.total - 3
            switch step {
            case 0: flags = 0x02
            case 1: (fromClient, flags) = (false, 0x12)
            case 2: flags = 0x10
            default:
                if closing {
                    let phase = step - (flow.total - 3)
                    (fromClient, flags) = [(true, 0x11), (false, 0x11), (true, 0x10)][phase]
                } else if flow.total < 4 && step == flow.total - 1 {
                    flags = 0x14
                } else {
                    fromClient = random.below(3) == 0
                    flags = 0x18
                    payload = fromClient ? 40 + random.below(400) : 200 + random.below(1_200)
                }
            }
        case .udp:
            fromClient = step % 2 == 0
            payload = fromClient ? 30 + random.below(60) : 60 + random.below(500)
        case .icmp:
            fromClient = step % 2 == 0
            payload = 56
        }
        return frame.withUnsafeMutableBytes { bytes in
            var writer = FrameWriter(bytes)
            writer.writeHeaders(of: flow, fromClient: fromClient, flags: flags, payload: payload, step: step)
            return Self.payloadPattern.withUnsafeBytes { pattern in
                writer.write(UnsafeRawBufferPointer(rebasing: pattern[0..<payload]))
                return writer.at
            }
        }
    }

    /// Payload bytes: each the low byte of its offset in the payload.
    private static let payloadPattern = (0..<1_600).map { UInt8(truncatingIfNeeded: $0) }
}

/// Writes a synthesized frame's big-endian fields, one after another, into the synthesizer's
/// frame buffer (1,600 bytes: more than the longest frame it builds, 1,477).
private struct FrameWriter {
    let bytes: UnsafeMutableRawBufferPointer
    private(set) var at = 0

    init(_ bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

    mutating func put8(_ value: UInt8) {
        bytes[at] = value
        at += 1
    }

    mutating func put16(_ value: UInt16) {
        bytes.storeBytes(of: value.bigEndian, toByteOffset: at, as: UInt16.self)
        at += 2
    }

    mutating func put32(_ value: UInt32) {
        bytes.storeBytes(of: value.bigEndian, toByteOffset: at, as: UInt32.self)
        at += 4
    }

    /// An IPv6 address in 2001:db8::/96 whose last 32 bits are `address`.
    mutating func putIPv6(_ address: UInt32) {
        put32(0x2001_0DB8)
        put32(0)
        put32(0)
        put32(address)
    }

    mutating func write(_ source: UnsafeRawBufferPointer) {
        UnsafeMutableRawBufferPointer(rebasing: bytes[at..<(at + source.count)]).copyMemory(from: source)
        at += source.count
    }

    /// The Ethernet (and 802.1Q), IP and transport headers of `flow`'s frame number `step`.
    fileprivate mutating func writeHeaders(
        of flow: TrafficSynthesizer.Flow, fromClient: Bool, flags: UInt8, payload: Int, step: Int
    ) {
        let client = flow.client
        let server = flow.server
        // Ethernet: locally administered MACs derived from the addresses.
        put16(0x0200)
        put32(fromClient ? server : client)
        put16(0x0200)
        put32(fromClient ? client : server)
        if let vlan = flow.vlan {
            put16(0x8100)
            put16(vlan)
        }
        put16(flow.ipv6 ? 0x86DD : 0x0800)
        let transportLength: Int
        let ipProtocol: UInt8
        switch flow.kind {
        case .tcp: (transportLength, ipProtocol) = (20 + payload, 6)
        case .udp: (transportLength, ipProtocol) = (8 + payload, 17)
        case .icmp: (transportLength, ipProtocol) = (8 + payload, flow.ipv6 ? 58 : 1)
        }
        let source = fromClient ? client : server
        let destination = fromClient ? server : client
        if flow.ipv6 {
            put32(0x6000_0000)
            put16(UInt16(transportLength))
            put8(ipProtocol)
            put8(64)
            putIPv6(source)
            putIPv6(destination)
        } else {
            put8(0x45)
            put8(0)
            put16(UInt16(20 + transportLength))
            put16(UInt16(truncatingIfNeeded: step))
            put16(0x4000)
            put8(64)
            put8(ipProtocol)
            put16(0)
            put32(source)
            put32(destination)
        }
        let sourcePort = fromClient ? flow.clientPort : flow.serverPort
        let destinationPort = fromClient ? flow.serverPort : flow.clientPort
        switch flow.kind {
        case .tcp:
            put16(sourcePort)
            put16(destinationPort)
            put32(UInt32(truncatingIfNeeded: step &* 1_000))
            put32(step == 0 ? 0 : UInt32(truncatingIfNeeded: step &* 999))
            put8(0x50)
            put8(flags)
            put16(65_535)
            put32(0)
        case .udp:
            put16(sourcePort)
            put16(destinationPort)
            put16(UInt16(transportLength))
            put16(0)
        case .icmp:
            let request: UInt8 = flow.ipv6 ? 128 : 8
            let reply: UInt8 = flow.ipv6 ? 129 : 0
            put8(fromClient ? request : reply)
            put8(0)
            put16(0)
            put16(flow.clientPort)
            put16(UInt16(truncatingIfNeeded: step / 2))
        }
    }
}

/// SplitMix64: a small, fast, well-distributed generator with a 64-bit state (tests shuffle with
/// it too, so that a failing order can be replayed from its seed).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(1, bound))) }

    /// A uniform value in (0, 1].
    mutating func unit() -> Double { Double((next() >> 11) + 1) / Double(1 << 53) }
}

/// `x^(1/1.2)` for x in (0, 1], via exp/log approximations (no Foundation).
func pow12(_ x: Double) -> Double { expApprox(logApprox(x) / 1.2) }

/// Natural logarithm (|error| < 1e-12 on (0, 1]).
func logApprox(_ x: Double) -> Double {
    guard x > 0 else { return -745 }
    var exponent = 0
    var mantissa = x
    while mantissa < 0.5 {
        mantissa *= 2
        exponent -= 1
    }
    while mantissa > 1 {
        mantissa /= 2
        exponent += 1
    }
    // ln(m) for m in [0.5, 1] with the series of atanh: ln(m) = 2·atanh((m−1)/(m+1)).
    let y = (mantissa - 1) / (mantissa + 1)
    let y2 = y * y
    var term = y
    var sum = 0.0
    var k = 1.0
    for _ in 0..<20 {
        sum += term / k
        term *= y2
        k += 2
    }
    return 2 * sum + Double(exponent) * 0.693_147_180_559_945_3
}

/// e^x (relative error < 1e-12 for the range used here).
func expApprox(_ x: Double) -> Double {
    let n = (x / 0.693_147_180_559_945_3).rounded(.down)
    let r = x - n * 0.693_147_180_559_945_3
    var term = 1.0
    var sum = 1.0
    for k in 1..<20 {
        term *= r / Double(k)
        sum += term
    }
    var result = sum
    if n > 0 {
        for _ in 0..<Int(min(n, 1_000)) { result *= 2 }
    } else if n < 0 {
        for _ in 0..<Int(min(-n, 1_100)) { result /= 2 }
    }
    return result
}
