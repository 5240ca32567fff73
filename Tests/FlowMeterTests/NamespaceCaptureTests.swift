// Real kernel traffic between hosts of our own: two network namespaces joined by a veth pair;
// tcpreplay sends a synthesized capture into one end and `Replay.run(interface:)` captures the
// other, once its sockets receive (`ready`). The live result must equal the replay of the file
// itself (minus kernel drops), or with a filter its UDP part; on `any`, cooked, the same
// conversations with a cooked header's bytes in place of the Ethernet ones. A tun device (no link header)
// receives the same traffic's IP packets, written into it by the test: captured as raw IP, they
// must equal the replay of a raw-IP file of those packets. Needs root, iproute2 and tcpreplay (CI
// installs it); skipped with a message otherwise. Traffic stays inside the namespaces, which the
// test removes. Serialized: concurrent `ip netns add` and
// `ip netns exec` race on /var/run/netns mounts.

import FlowMeter
import PacketWire
import Synchronization
import TestSupport
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
        let thread = TestThread {
            outcome.result = Result {
                try LiveCapture.enterNetworkNamespace(named: name)
                return try body()
            }
        }
        thread.join()
        return try outcome.result!.get()
    }

    /// `any`: the receiver captures on every interface, cooked (a Linux cooked v2 header in place
    /// of each frame's Ethernet header and VLAN tags).
    @Test(arguments: [(false, nil, false), (true, nil, false), (true, "udp", false), (false, nil, true)])
    func vethTrafficFromTcpreplayEqualsTheFileReplay(fanout: Bool, filter: String?, any: Bool) throws {
        guard geteuid() == 0 else {
            print("namespace tests need root; skipping")
            return
        }
        guard Self.shell("command -v ip") == 0, Self.shell("command -v tcpreplay") == 0 else {
            print("namespace tests need iproute2 and tcpreplay (apt-get install iproute2 tcpreplay); skipping")
            return
        }
        let tag = "\(getpid() % 100_000)\(fanout ? "f" : "s")\(filter == nil ? "" : "u")\(any ? "a" : "")"
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
        let replayer = TestThread {
            while sockets.load(ordering: .acquiring) == 0 { usleep(10_000) }
            _ = Self.shell("ip netns exec \(sender) tcpreplay -q -i \(senderLink) --mbps 200 '\(path)'")
        }
        var options = LiveCaptureOptions()
        options.filter = filter
        let live = try Self.inNamespace(receiver) { [options] in
            // With a filter the frame count is not known in advance: the duration ends the capture.
            try Replay().run(
                interface: any ? "any" : receiverLink, options: options, duration: filter == nil ? 20 : 4,
                count: filter == nil ? 3_000 : nil, fanout: fanout
            ) { count, _ in sockets.store(count, ordering: .releasing) }
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
        guard !any else {
            // Each frame's Ethernet header and VLAN tags became a 20-byte cooked header.
            let reader = try CaptureReader(path: path)
            var cookedBytes = 0
            while try reader.read(
                maximum: 256,
                { record in
                    let bytes = record.bytes
                    var linkHeader = 14
                    while bytes.count >= linkHeader + 4,
                        [0x8100, 0x88A8, 0x9100].contains(Int(bytes[linkHeader - 2]) << 8 | Int(bytes[linkHeader - 1]))
                    {
                        linkHeader += 4
                    }
                    cookedBytes += record.originalLength - linkHeader + 20
                }) > 0
            {}
            #expect(live.wireBytes == cookedBytes && cookedBytes != expected.wireBytes)
            for kind in ConversationKind.allCases {
                let frames = { (result: ReplayResult) in
                    result.sortedConversations(kind).map {
                        "\($0.addressA) \($0.portA) \($0.addressB) \($0.portB) \($0.framesAToB) \($0.framesBToA)"
                    }
                }
                #expect(frames(live) == frames(expected), "conv_\(kind.rawValue)")
            }
            return
        }
        #expect(live.wireBytes == expected.wireBytes)
        for kind in ConversationKind.allCases {
            let ours = ReplayReport.conversationsCSV(live, kind)
            #expect(ours == ReplayReport.conversationsCSV(expected, kind), "conv_\(kind.rawValue)")
        }
    }

    @Test func tunTrafficIsCapturedAsRawIP() throws {
        guard geteuid() == 0, Self.shell("command -v ip") == 0 else {
            print("the tun test needs root and iproute2; skipping")
            return
        }
        let namespace = "nst\(getpid() % 100_000)"
        let device = "tn\(getpid() % 100_000)"
        guard Self.shell("ip netns add \(namespace)") == 0 else {
            print("cannot create a network namespace here; skipping")
            return
        }
        defer { _ = Self.shell("ip netns delete \(namespace)") }
        // The synthesized traffic's IP packets (untagged IPv4 and IPv6 frames without their
        // Ethernet header), and a raw-IP capture file of them for the expected result.
        var packets: [(bytes: [UInt8], time: UInt64)] = []
        var synthesizer = TrafficSynthesizer(.init(packets: 3_000, flows: 200, seed: 72))
        synthesizer.generate { frame, time in
            guard frame.count > 14, frame[12] == 0x08 && frame[13] == 0x00 || frame[12] == 0x86 && frame[13] == 0xDD
            else { return }
            packets.append((Array(frame[14...]), time))
        }
        let path = "/tmp/netisr-tun-\(getpid()).pcap"
        defer { unlink(path) }
        let writer = try CaptureWriter(path: path, format: .pcap(nanosecond: true))
        for packet in packets {
            try packet.bytes.withUnsafeBytes { try writer.write($0, timestamp: packet.time, linkType: .raw) }
        }
        try writer.close()
        let expected = try Replay().run(files: [path])
        #expect(expected.frames == packets.count && packets.count > 2_000)

        let linkType = Mutex<LinkType?>(nil)
        let live = try Self.inNamespace(namespace) { [packets] in
            let tun = open("/dev/net/tun", O_RDWR)
            guard tun >= 0 else { throw CaptureError(.io, at: 0, "no /dev/net/tun") }
            defer { close(tun) }
            // struct ifreq: the name, then the flags IFF_TUN | IFF_NO_PI; TUNSETIFF.
            var request = [UInt8](repeating: 0, count: 40)
            for (index, byte) in device.utf8.enumerated() { request[index] = byte }
            request[16] = 0x01
            request[17] = 0x10
            guard request.withUnsafeMutableBytes({ ioctl(tun, 0x4004_54CA, $0.baseAddress!) }) == 0,
                Self.shell("ip link set \(device) up") == 0
            else { throw CaptureError(.io, at: 0, "cannot create tun device \(device)") }
            // Bounded: were the capture never ready (it failed to start), the join below must not hang.
            let ready = CaptureReady()
            let injector = TestThread {
                guard ready.wait() else { return }
                for (index, packet) in packets.enumerated() {
                    _ = packet.bytes.withUnsafeBytes { write(tun, $0.baseAddress, $0.count) }
                    // Paced: the kernel's receive backlog drops before any capture sees the packet.
                    if index % 50 == 49 { usleep(1_000) }
                }
            }
            defer { injector.join() }
            return try Replay().run(interface: device, duration: 20, count: packets.count) { _, type in
                linkType.withLock { $0 = type }
                ready.signal()
            }
        }
        #expect(linkType.withLock { $0 } == .raw)
        #expect(live.drops.first { $0.reason == "kernel" }?.packets == 0)
        #expect(live.frames == expected.frames)
        #expect(live.wireBytes == expected.wireBytes)
        for kind in ConversationKind.allCases {
            let ours = ReplayReport.conversationsCSV(live, kind)
            #expect(ours == ReplayReport.conversationsCSV(expected, kind), "conv_\(kind.rawValue)")
        }
    }

    /// Asks to join a new hash-mode fanout group with a kernel-chosen id (SOL_PACKET,
    /// PACKET_FANOUT, PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID); the kernel uses up an id
    /// even when the join fails (an unbound socket). Returns setsockopt's result.
    static func requestNewFanoutGroup(_ socket: Int32) -> Int32 {
        var value: Int32 = 0x2000 << 16
        return setsockopt(socket, 263, 18, &value, 4)
    }

    /// The fanout id the kernel gives a new group when a bound AF_PACKET socket on `interface`
    /// asks for one; nil on failure. Each call uses up one id.
    static func probeNextFanoutID(interface: String) -> Int? {
        let probe = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
        guard probe >= 0 else { return nil }
        defer { close(probe) }
        // struct sockaddr_ll: family, protocol (ETH_P_ALL, big-endian), interface index, the rest 0.
        var address = [UInt8](repeating: 0, count: 20)
        address.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: UInt16(AF_PACKET), toByteOffset: 0, as: UInt16.self)
            bytes.storeBytes(of: UInt16(0x0003).bigEndian, toByteOffset: 2, as: UInt16.self)
            bytes.storeBytes(of: Int32(if_nametoindex(interface)), toByteOffset: 4, as: Int32.self)
        }
        let bound = address.withUnsafeBytes {
            bind(probe, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
        }
        var value: Int32 = 0
        var length = socklen_t(4)
        guard bound == 0, requestNewFanoutGroup(probe) == 0, getsockopt(probe, 263, 18, &value, &length) == 0
        else { return nil }
        return Int(value & 0xFFFF)
    }

    /// The first fanout group the kernel creates after boot gets id 0 — which must not be taken
    /// for "no group yet": the test moves the kernel's id counter round to 0, opens a two-socket
    /// group, and every datagram sent over loopback must be read exactly once by the group.
    @Test func aFanoutGroupWithIdZeroReadsEveryFrameOnce() throws {
        guard geteuid() == 0, Self.shell("command -v ip") == 0 else {
            print("the fanout id test needs root and iproute2; skipping")
            return
        }
        let namespace = "nsz\(getpid() % 100_000)"
        guard Self.shell("ip netns add \(namespace)") == 0,
            Self.shell("ip netns exec \(namespace) ip link set lo up") == 0
        else {
            print("cannot create a network namespace here; skipping")
            return
        }
        defer { _ = Self.shell("ip netns delete \(namespace)") }
        let sent = 200
        let outcome = Mutex<(groupID: Int?, perSocket: [Int])?>(nil)
        let failure = Mutex<String?>(nil)
        let thread = TestThread {
            do {
                try LiveCapture.enterNetworkNamespace(named: namespace)
                guard let current = Self.probeNextFanoutID(interface: "lo") else {
                    failure.withLock { $0 = "cannot probe fanout ids" }
                    return
                }
                // Failed joins (an unbound socket) use up the ids before 0.
                let spender = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
                defer { close(spender) }
                for _ in (current + 1)..<0x1_0000 { _ = Self.requestNewFanoutGroup(spender) }
                let captures = try LiveCapture.fanout(interface: "lo", sockets: 2)
                let groupID = Self.probeNextFanoutID(interface: "lo").map { $0 - 1 }
                let sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                defer { close(sender) }
                let payload = [UInt8](repeating: 0x5A, count: 64)
                for index in 0..<sent {
                    _ = Loopback.withAddress(port: UInt16(50_000 + index % 50)) {
                        sendto(sender, payload, payload.count, 0, $0, $1)
                    }
                }
                var perSocket = [0, 0]
                var quietRounds = 0
                while quietRounds < 3 {
                    var delivered = 0
                    for (index, capture) in captures.enumerated() {
                        delivered += capture.read(timeoutMilliseconds: 50) { record in
                            if record.bytes.count == 14 + 20 + 8 + payload.count, record.bytes.last == 0x5A {
                                perSocket[index] += 1
                            }
                        }
                    }
                    quietRounds = delivered == 0 ? quietRounds + 1 : 0
                }
                outcome.withLock { $0 = (groupID, perSocket) }
            } catch {
                failure.withLock { $0 = "\(error)" }
            }
        }
        thread.join()
        #expect(failure.withLock { $0 } == nil)
        let (groupID, perSocket) = try #require(outcome.withLock { $0 })
        #expect(groupID == 0)
        #expect(perSocket.reduce(0, +) == sent && perSocket.allSatisfy { $0 > 0 })
    }
}
