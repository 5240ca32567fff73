// The comparison runner behind compare.sh: every workload once per round, rounds interleaved,
// medians over rounds. Ratios are taken within each round (netisr throughput ÷ peer throughput,
// > 1 means netisr is faster) and their median reported, so machine noise between rounds cancels.
// Prints a table, then (last line) one JSON object of median ratios. `--quick` for a short run,
// `--svg FILE` to draw the ratios, `--extra KEY=A,…/B,…` to fold in outside measurements (seconds per round).

import CPeers
import NIOPosix
import NetISR

#if canImport(Glibc)
    import Glibc
#endif

let arguments = CommandLine.arguments.dropFirst()
let quick = arguments.contains("--quick")
let svgPath = arguments.firstIndex(of: "--svg").flatMap {
    arguments.index(after: $0) < arguments.endIndex ? arguments[arguments.index(after: $0)] : nil
}
let rounds = quick ? 3 : 9
let fastItems = quick ? 1_000_000 : 4_000_000
let slowItems = quick ? 100_000 : 300_000

// Cache-resident (about 8 MB), so the workload measures per-packet work rather than how fast a
// shared machine streams memory.
let traffic = InMemoryTraffic(packets: 20_000, flows: 2_000)
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
_ = try group.next().submit { _ = peer_pin_current_thread(Workloads.consumerCPU) }.wait()

let workloads: [(String, () throws -> Double)] = [
    ("c.spscRing.burst32", { Workloads.cRing(items: fastItems, burst: 32) }),
    ("c.spscRing.single", { Workloads.cRing(items: fastItems, burst: 1) }),
    ("c.functionPointerCall", { Workloads.cCall(items: fastItems * 4) }),
    ("swift.closureCall", { Workloads.swiftClosureCall(items: fastItems * 4) }),
    (
        "netisr.deferred.burst32.1ws",
        { try Workloads.netisr(policy: .deferred, workstreams: 1, items: fastItems, burst: 32) }
    ),
    (
        "netisr.deferred.single.1ws",
        { try Workloads.netisr(policy: .deferred, workstreams: 1, items: fastItems / 2, burst: 1) }
    ),
    (
        "netisr.deferred.burst32.2ws",
        { try Workloads.netisr(policy: .deferred, workstreams: 2, items: fastItems, burst: 32) }
    ),
    (
        "netisr.hybrid.burst32.1ws",
        { try Workloads.netisr(policy: .hybrid, workstreams: 1, items: fastItems, burst: 32) }
    ),
    (
        "netisr.direct.burst32",
        { try Workloads.netisr(policy: .direct, workstreams: 1, items: fastItems * 2, burst: 32) }
    ),
    ("netisr.direct.single", { try Workloads.netisr(policy: .direct, workstreams: 1, items: fastItems, burst: 1) }),
    (
        "netisr.drop.burst32",
        { try Workloads.netisr(policy: .deferred, workstreams: 1, items: fastItems, burst: 32, start: false) }
    ),
    ("gcd.async", { Workloads.gcd(items: slowItems) }),
    ("nio.execute", { try Workloads.nio(group: group, items: slowItems) }),
    ("asyncStream", { Workloads.asyncStream(items: slowItems / 2) }),
    ("mutexDeque.burst32", { Workloads.mutexDeque(items: fastItems, burst: 32) }),
    ("wire.parseClassifyKeyHash", { WireWorkload.parseClassifyKeyHash(traffic, rounds: quick ? 50 : 100) }),
]

/// (JSON key, netisr workload, peer workload)
let comparisons: [(String, String, String)] = [
    ("deferred_vs_c_ring", "netisr.deferred.burst32.1ws", "c.spscRing.burst32"),
    ("deferred_single_vs_c_ring_single", "netisr.deferred.single.1ws", "c.spscRing.single"),
    ("direct_vs_c_call", "netisr.direct.burst32", "c.functionPointerCall"),
    ("direct_single_vs_c_call", "netisr.direct.single", "c.functionPointerCall"),
    ("direct_vs_swift_closure", "netisr.direct.burst32", "swift.closureCall"),
    ("deferred_vs_gcd", "netisr.deferred.burst32.1ws", "gcd.async"),
    ("deferred_vs_nio", "netisr.deferred.burst32.1ws", "nio.execute"),
    ("deferred_vs_asyncstream", "netisr.deferred.burst32.1ws", "asyncStream"),
    ("deferred_vs_mutex_deque", "netisr.deferred.burst32.1ws", "mutexDeque.burst32"),
]

var samples: [String: [Double]] = [:]
if let only = arguments.firstIndex(of: "--only").map({ arguments[arguments.index(after: $0)] }) {
    // Profiling aid: run one workload repeatedly and print its times.
    for (name, run) in workloads where name == only {
        for _ in 0..<rounds * 3 { print(name, try run()) }
    }
    exit(0)
}
for round in 0..<rounds {
    // Rotate the order each round so no workload always follows the same neighbour.
    let order = workloads.indices.map { workloads[($0 + round) % workloads.count] }
    for (name, run) in order {
        samples[name, default: []].append(try run())
    }
    FileDescriptorStream.standardError.write("round \(round + 1)/\(rounds) done\n")
}
try group.syncShutdownGracefully()

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func format(_ value: Double, _ decimals: Int = 2) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return String(rounded)
}

func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let padding = String(repeating: " ", count: max(0, width - text.count))
    return left ? text + padding : padding + text
}

print(pad("workload", 30, left: true) + pad("median ns", 11) + pad("min", 9) + pad("max", 9) + pad("Mitems/s", 10))
for (name, _) in workloads {
    let values = samples[name]!
    print(
        pad(name, 30, left: true) + pad(format(median(values)), 11) + pad(format(values.min()!), 9)
            + pad(format(values.max()!), 9) + pad(format(1_000 / median(values)), 10))
}
print("")
print(pad("comparison (netisr ÷ peer throughput)", 40, left: true) + pad("median", 9) + pad("min", 9) + pad("max", 9))
var ratios: [(String, Double)] = []
for (key, ours, theirs) in comparisons {
    let perRound = zip(samples[ours]!, samples[theirs]!).map { $1 / $0 }
    ratios.append((key, median(perRound)))
    print(
        pad(key, 40, left: true) + pad(format(median(perRound), 3), 9) + pad(format(perRound.min()!, 3), 9)
            + pad(format(perRound.max()!, 3), 9))
}
for extra in arguments where extra.hasPrefix("--extra=") {
    // --extra=key=peerSeconds,…/netisrSeconds,…: outside measurements by compare.sh, one time per
    // interleaved round on each side (the ratio of each round, then their median), or one peer
    // time against the median of ours.
    let parts = extra.dropFirst("--extra=".count).split(separator: "=")
    guard parts.count == 2, let slash = parts[1].firstIndex(of: "/") else { continue }
    let peer = parts[1][..<slash].split(separator: ",").compactMap { Double($0) }
    let ours = parts[1][parts[1].index(after: slash)...].split(separator: ",").compactMap { Double($0) }
    guard !peer.isEmpty, !ours.isEmpty, ours.allSatisfy({ $0 > 0 }) else { continue }
    let perRound = peer.count == ours.count ? zip(peer, ours).map { $0 / $1 } : [median(peer) / median(ours)]
    ratios.append((String(parts[0]), median(perRound)))
    print(
        pad(String(parts[0]), 40, left: true) + pad(format(median(perRound), 3), 9)
            + pad(format(perRound.min()!, 3), 9) + pad(format(perRound.max()!, 3), 9))
}
if let svgPath { try RatioChart.write(ratios, to: svgPath) }
print(JSONValue.object(ratios.map { ($0.0, .double((($0.1 * 1000).rounded()) / 1000)) }).rendered)
