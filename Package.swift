// swift-tools-version:6.0
//
// swift-netisr: a user-space, multi-core packet dispatch service modelled on FreeBSD's netisr.
// The engine (`NetISR`) and the wire formats (`PacketWire`) depend on the standard library only;
// the command adds swift-argument-parser.
import PackageDescription

let package = Package(
    name: "swift-netisr",
    products: [
        .library(name: "NetISR", targets: ["NetISR"]),
        .library(name: "NetISRTesting", targets: ["NetISRTesting"]),
        .library(name: "PacketWire", targets: ["PacketWire"]),
        .library(name: "FlowMeter", targets: ["FlowMeter"]),
        .executable(name: "netisr", targets: ["netisr"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        .target(name: "CNetISRShim"),
        .target(name: "NetISR", dependencies: ["CNetISRShim"]),
        .target(name: "NetISRTesting", dependencies: ["NetISR"]),
        .target(name: "CLinuxCapture"),
        .target(name: "PacketWire", dependencies: ["CLinuxCapture", "CNetISRShim"]),
        .target(name: "FlowMeter", dependencies: ["NetISR", "PacketWire", "CNetISRShim"]),
        .executableTarget(
            name: "netisr",
            dependencies: [
                "NetISR", "PacketWire", "FlowMeter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Shared by the test targets only (fixtures, threads); not part of any product.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "NetISRTests", dependencies: ["NetISR", "NetISRTesting", "TestSupport"]),
        .testTarget(name: "PacketWireTests", dependencies: ["PacketWire", "TestSupport"]),
        .testTarget(
            name: "FlowMeterTests", dependencies: ["FlowMeter", "PacketWire", "NetISR", "TestSupport"],
            exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
