// Real kernel traffic between hosts of our own: two network namespaces joined by a veth pair;
// tcpreplay sends a synthesized capture into one end and `Replay.run(interface:)` captures the
// other, once its sockets receive (`ready`). The live result must equal the replay of the file
// itself (minus kernel drops), or with a filter its UDP part. Needs
// root, iproute2 and tcpreplay (CI installs it); skipped with a message otherwise. Traffic stays
// inside the namespaces, which the test removes. Serialized: concurrent `ip netns add` and
// `ip netns exec` race on /var/run/netns mounts.

import FlowMeter
import PacketWire
import Synchronization
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

    @Test(arguments: [(false, nil), (true, nil), (true, "udp")] as [(Bool, String?)])
    func vethTrafficFromTcpreplayEqualsTheFileReplay(fanout: Bool, filter: String?) throws {
        guard geteuid() == 0 else {
            print("namespace tests need root; skipping")
            return
        }
        guard Self.shell("command -v ip") == 0, Self.shell("command -v tcpreplay") == 0 else {
            print("namespace tests need iproute2 and tcpreplay (apt-get install iproute2 tcpreplay); skipping")
            return
        }
        let tag = "\(getpid() % 100_000)\(fanout ? "f" : "s")\(filter == nil ? "" : "u")"
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
        let sockets = Atomic<Int>(0)
        let replayer = SenderThread {
            while sockets.load(ordering: .acquiring) == 0 { usleep(10_000) }
            _ = Self.shell("ip netns exec \(sender) tcpreplay -q -i \(senderLink) --mbps 200 '\(path)'")
        }
        var options = LiveCaptureOptions()
        options.filter = filter
        let live = try Self.inNamespace(receiver) { [options] in
            // With a filter the frame count is not known in advance: the duration ends the capture.
            try Replay().run(
                interface: receiverLink, options: options, duration: filter == nil ? 20 : 4,
                count: filter == nil ? 3_000 : nil, fanout: fanout
            ) { sockets.store($0, ordering: .releasing) }
        }
        replayer.join()
        #expect(sockets.load(ordering: .relaxed) == (fanout ? live.snapshot.configuration.workstreamCount : 1))
        let kernelDrops = live.drops.first { $0.reason == "kernel" }?.packets ?? -1
        #expect(kernelDrops == 0)
        if fanout {
            // The kernel spread the 200 flows over the group: every reader's workstream handled some.
            let ip = live.snapshot.work.filter { $0.name == "ip" }
            #expect(ip.count == live.snapshot.configuration.workstreamCount && ip.allSatisfy { $0.handled > 0 })
        }
        guard filter == nil else {
            let udpFrames = expected.conversations[.udp, default: []].reduce(0) { $0 + $1.frames }
            #expect(udpFrames > 0 && live.frames == udpFrames)
            #expect(live.conversations[.tcp, default: []].isEmpty)
            #expect(ReplayReport.conversationsCSV(live, .udp) == ReplayReport.conversationsCSV(expected, .udp))
            return
        }
        #expect(live.frames == expected.frames)
        #expect(live.wireBytes == expected.wireBytes)
        for kind in ConversationKind.allCases {
            let ours = ReplayReport.conversationsCSV(live, kind)
            #expect(ours == ReplayReport.conversationsCSV(expected, kind), "conv_\(kind.rawValue)")
        }
    }
}
