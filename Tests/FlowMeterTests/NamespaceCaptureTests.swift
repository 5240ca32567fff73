// Real kernel traffic between hosts of our own: two network namespaces joined by a veth pair;
// tcpreplay sends a synthesized capture into one end and `Replay.run(interface:)` captures the
// other. The live result must equal the replay of the file itself (minus kernel drops). Needs
// root, iproute2 and tcpreplay (CI installs it); skipped with a message otherwise. Traffic stays
// inside the namespaces, which the test removes. Serialized: concurrent `ip netns add` and
// `ip netns exec` race on /var/run/netns mounts.

import FlowMeter
import PacketWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct NamespaceCaptureTests {
    static func shell(_ command: String) -> Int32 {
        system(command + " > /dev/null 2>&1")
    }

    final class Outcome: @unchecked Sendable {
        var result: Result<ReplayResult, Error>?
    }

    /// Runs `body` on a thread that has joined network namespace `name`.
    static func inNamespace(_ name: String, _ body: @escaping @Sendable () throws -> ReplayResult) throws
        -> ReplayResult
    {
        let outcome = Outcome()
        let thread = SenderThread {
            outcome.result = Result {
                try LiveCapture.enterNetworkNamespace(named: name)
                return try body()
            }
        }
        thread.join()
        return try outcome.result!.get()
    }

    @Test(arguments: [false, true])
    func vethTrafficFromTcpreplayEqualsTheFileReplay(fanout: Bool) throws {
        guard geteuid() == 0 else {
            print("namespace tests need root; skipping")
            return
        }
        guard Self.shell("command -v ip") == 0, Self.shell("command -v tcpreplay") == 0 else {
            print("namespace tests need iproute2 and tcpreplay (apt-get install iproute2 tcpreplay); skipping")
            return
        }
        let tag = "\(getpid() % 100_000)\(fanout ? "f" : "s")"
        let (sender, receiver) = ("nsa\(tag)", "nsb\(tag)")
        let (senderLink, receiverLink) = ("va\(tag)", "vb\(tag)")
        defer {
            _ = Self.shell("ip netns delete \(sender)")
            _ = Self.shell("ip netns delete \(receiver)")
        }
        let setUp = [
            "ip netns add \(sender)", "ip netns add \(receiver)",
            "ip link add \(senderLink) type veth peer name \(receiverLink)",
            "ip link set \(senderLink) netns \(sender)", "ip link set \(receiverLink) netns \(receiver)",
            "ip netns exec \(sender) sysctl -q -w net.ipv6.conf.all.disable_ipv6=1",
            "ip netns exec \(receiver) sysctl -q -w net.ipv6.conf.all.disable_ipv6=1",
            "ip netns exec \(sender) ip link set \(senderLink) mtu 1600 up",
            "ip netns exec \(receiver) ip link set \(receiverLink) mtu 1600 up",
        ]
        for command in setUp {
            guard Self.shell(command) == 0 else {
                print("cannot create network namespaces here (\(command)); skipping")
                return
            }
        }
        let path = try SynthCapture.write(packets: 3_000, flows: 200, seed: 71, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let expected = try Replay().run(files: [path])
        let replayer = SenderThread {
            usleep(500_000)
            _ = Self.shell("ip netns exec \(sender) tcpreplay -q -i \(senderLink) --mbps 200 '\(path)'")
        }
        let live = try Self.inNamespace(receiver) {
            try Replay().run(interface: receiverLink, duration: 8, count: 3_000, fanout: fanout)
        }
        replayer.join()
        let kernelDrops = live.drops.first { $0.reason == "kernel" }?.packets ?? -1
        #expect(kernelDrops == 0)
        #expect(live.frames == expected.frames)
        #expect(live.wireBytes == expected.wireBytes)
        for kind in ConversationKind.allCases {
            let ours = ReplayReport.conversationsCSV(live, kind)
            #expect(ours == ReplayReport.conversationsCSV(expected, kind), "conv_\(kind.rawValue)")
        }
    }
}
