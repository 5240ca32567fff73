// Live capture with real kernel traffic: UDP datagrams sent over loopback are captured through
// the AF_PACKET ring, accounted, and written to a file that reads back. Needs root (CAP_NET_RAW):
// skipped with a message otherwise; CI runs as root.

import FlowMeter
import PacketWire
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct LiveCaptureTests {
    static func sendDatagrams(_ count: Int, to port: UInt16, after delay: useconds_t) {
        usleep(delay)
        let socketDescriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(socketDescriptor) }
        let payload = [UInt8](repeating: 0x42, count: 100)
        for _ in 0..<count {
            _ = Loopback.withAddress(port: port) { sendto(socketDescriptor, payload, payload.count, 0, $0, $1) }
        }
    }

    @Test func loopbackTrafficIsCapturedAccountedAndWritten() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        // Above the ephemeral range (32768…60999), so no other test's socket has this port.
        let port = UInt16(61_000 + getpid() % 4_000)
        let sent = 300
        let path = "/tmp/netisr-live-\(getpid()).pcapng"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcapng(nanosecond: true))
        var configuration = ReplayConfiguration()
        configuration.threads = 2
        let ready = CaptureReady()
        let sender = TestThread {
            ready.wait()
            Self.sendDatagrams(sent, to: port, after: 300_000)
        }
        let views = Mutex<[LiveView.Frame]>([])
        let view = LiveView(interval: 0.2) { frame in views.withLock { $0.append(frame) } }
        let result = try Replay(configuration).run(interface: "lo", duration: 1.5, write: writer, liveView: view) {
            _, _ in ready.signal()
        }
        sender.join()
        try writer.close()
        // The live view ran while capturing; its last frame (after the datagrams) has seen them all.
        let shown = views.withLock { $0 }
        #expect(shown.count >= 3)
        #expect(zip(shown, shown.dropFirst()).allSatisfy { $0.frames <= $1.frames && $0.elapsed < $1.elapsed })
        // Top flows are the interval's: ours shows while its datagrams arrive, never with more
        // bytes than it sent.
        let ourFlows = shown.flatMap(\.topFlows).filter { $0.key.destinationPort == port }
        #expect(!ourFlows.isEmpty)
        #expect(ourFlows.reduce(0) { $0 + $1.bytes } == sent * (14 + 20 + 8 + 100))
        if let last = shown.last {
            let ipBytes = last.protocolBytes.filter { $0.protocol == "ip" }.reduce(0) { $0 + $1.bytes }
            #expect(ipBytes >= sent * (14 + 20 + 8 + 100) && last.wireBytes >= ipBytes)
            #expect(last.frames <= result.frames)
        }
        let ours = result.conversations[.udp, default: []].filter { $0.portB == port || $0.portA == port }
        #expect(ours.reduce(0) { $0 + $1.frames } == sent)
        #expect(
            ours.allSatisfy { $0.addressA == IPAddress("127.0.0.1") && $0.bytes == $0.frames * (14 + 20 + 8 + 100) })
        #expect(result.drops.contains { $0.reason == "kernel" })
        // What was written reads back with every frame.
        let reader = try CaptureReader(path: path)
        var frames = 0
        while try reader.read(maximum: 256, { _ in frames += 1 }) > 0 {}
        #expect(frames == result.frames)
        #expect(result.snapshot.totals.offered == result.snapshot.totals.accountedFor)
    }

    /// `capture --write --rotate-seconds`: files of half a second of capture time each, numbered
    /// after the path given, together holding every frame the capture counted.
    @Test func theCaptureCommandRotatesItsFile() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        let netisr = try CommandLineTests.netisr()
        let base = "/tmp/netisr-rotate-\(getpid()).pcap"
        let rotation = CaptureRotation(seconds: 0.5)
        defer { for number in 1...40 { unlink(rotation.path(base, file: number)) } }
        let port = UInt16(61_000 + (getpid() + 2_000) % 4_000)
        let capturing = Atomic<Bool>(true)
        let sender = TestThread {
            while capturing.load(ordering: .relaxed) {
                Self.sendDatagrams(1, to: port, after: 50_000)
            }
        }
        let run = Shell.run(
            "'\(netisr)' capture -i lo --duration 2.3 --write '\(base)' --rotate-seconds 0.5 --json 2>/dev/null")
        capturing.store(false, ordering: .relaxed)
        sender.join()
        #expect(run?.status == 0)
        let counted = run.flatMap { $0.output.firstMatch(of: /"frames": ?(\d+)/).flatMap { Int($0.1) } }
        var frames = 0
        var files = 0
        while files < 40, (try? CaptureReader(path: rotation.path(base, file: files + 1))) != nil {
            files += 1
            let reader = try CaptureReader(path: rotation.path(base, file: files))
            var timestamps: [UInt64] = []
            while try reader.read(maximum: 256, { timestamps.append($0.timestamp) }) > 0 {}
            frames += timestamps.count
            #expect((timestamps.max() ?? 0) - (timestamps.min() ?? 0) < 500_000_000)
        }
        #expect((4...6).contains(files))
        #expect(counted != nil && frames == counted)
    }

    /// A snapshot length (no filter: the kernel program only cuts): frames are kept up to 60 bytes,
    /// in the accounts and in the file written, while lengths on the wire count whole.
    @Test func aSnapshotLengthCutsFramesButNotTheirCounts() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        let port = UInt16(61_000 + (getpid() + 1_000) % 4_000)
        let path = "/tmp/netisr-snap-\(getpid()).pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: true), snapLength: 60)
        var options = LiveCaptureOptions()
        options.snapLength = 60
        let ready = CaptureReady()
        let sender = TestThread {
            ready.wait()
            Self.sendDatagrams(50, to: port, after: 300_000)
        }
        let result = try Replay().run(interface: "lo", options: options, duration: 1.2, write: writer) { _, _ in
            ready.signal()
        }
        sender.join()
        try writer.close()
        let ours = result.conversations[.udp, default: []].filter { $0.portB == port }
        #expect(ours.reduce(0) { $0 + $1.frames } == 50 && ours.allSatisfy { $0.bytes == $0.frames * 142 })
        #expect(result.capturedBytes <= result.frames * 60 && result.capturedBytes < result.wireBytes)
        let reader = try CaptureReader(path: path)
        var lengths: [(captured: Int, original: Int)] = []
        while try reader.read(maximum: 256, { lengths.append(($0.bytes.count, $0.originalLength)) }) > 0 {}
        #expect(lengths.count == result.frames && lengths.allSatisfy { $0.captured <= 60 })
        #expect(lengths.filter { $0.original == 142 }.count >= 50)
        #expect(lengths.filter { $0.original == 142 }.allSatisfy { $0.captured == 60 })
        #expect(throws: CaptureError.self) {
            var tooLong = LiveCaptureOptions()
            tooLong.snapLength = 300_000
            _ = try LiveCapture(interface: "lo", options: tooLong)
        }
    }

    @Test func aMissingInterfaceIsOneClearError() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        do {
            _ = try Replay().run(interface: "no-such-if0", duration: 0.1)
            Issue.record("opened a missing interface")
        } catch let error as CaptureError {
            #expect(error.message.contains("no-such-if0"))
        }
    }
}
