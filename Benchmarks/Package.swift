// swift-tools-version:6.1
//
// Benchmarks for swift-netisr, kept out of the main package so `swift build` stays lean.
// - `NetISRBenchmarks`: ordo-one/benchmark suites (allocation counts checked against
//   Thresholds/ in CI, per-operation timings). Run: swift package benchmark
// - `Compare`: the side-by-side runner (C ring, C call, GCD, SwiftNIO, AsyncStream, Mutex+Deque)
//   behind compare.sh.
import PackageDescription

let package = Package(
    name: "swift-netisr-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-netisr", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        .target(name: "CPeers"),
        .executableTarget(
            name: "Compare",
            dependencies: [
                "CPeers",
                .product(name: "NetISR", package: "swift-netisr"),
                .product(name: "PacketWire", package: "swift-netisr"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .executableTarget(
            name: "NetISRBenchmarks",
            dependencies: [
                "CPeers",
                .product(name: "NetISR", package: "swift-netisr"),
                .product(name: "PacketWire", package: "swift-netisr"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/NetISRBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
