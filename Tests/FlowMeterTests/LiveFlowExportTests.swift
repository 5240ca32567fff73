// A live export (`capture --export`): flow records leave for the collector while the capture runs,
// as their timeouts end them — found by a sweep, without waiting for another packet — and no
// packet is lost or counted twice between the records sent during the capture and those sent at
// its end. The sweep itself is checked on a flow table directly; the live tests need root
// (CAP_NET_RAW) and skip with a message otherwise (CI runs as root).

import NetISR
import PacketWire
import Synchronization
import TestSupport
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct LiveFlowExportTests {
    static let second: UInt64 = 1_000_000_000

    static func flow(_ port: UInt16) -> FlowKey {
        FlowKey(
            source: IPAddress("10.0.0.1")!, destination: IPAddress("10.0.0.2")!, sourcePort: port, destinationPort: 53,
            ipProtocol: 17)
    }

    static func count(_ table: inout FlowTable, _ flow: FlowKey, at seconds: Double, length: Int = 100) {
        let timestamp = UInt64(seconds * 1e9)
        _ = table.countWithTimeouts(
            flow, vlan: nil, hash: FlowTable.hash(flow, vlan: nil), wireLength: length, timestamp: timestamp,
            tcpFlags: 0, workstream: 0)
    }

    @Test func aSweepEndsIdleAndOldRecordsAndTheirFlowsStartAgain() {
        var table = FlowTable(timeouts: FlowTimeouts(idle: 10, active: 100))
        let (quiet, busy, late) = (Self.flow(1), Self.flow(2), Self.flow(3))
        Self.count(&table, quiet, at: 0)
        for seconds in stride(from: 0.0, through: 96, by: 8) { Self.count(&table, busy, at: seconds) }
        Self.count(&table, late, at: 100)
        var ended: [FlowRecord] = []
        table.sweep(now: 101 * Self.second, into: &ended)
        // `quiet` idled out; `busy` (never idle 10 s) outlived the active timeout; `late` is open.
        #expect(ended.map(\.key) == [quiet, busy])
        #expect(ended.map(\.expiry) == [.idleTimeout, .activeTimeout])
        #expect(ended.map(\.packets) == [1, 13])
        #expect(table.records.map(\.key) == [late])
        // A swept flow's next packet starts a new record; nothing ends.
        Self.count(&table, quiet, at: 106)
        Self.count(&table, quiet, at: 107)
        #expect(table.finished.isEmpty)
        #expect(table.records.map(\.key) == [late, quiet])
        #expect(table.records.last?.packets == 2)
        #expect(table.records.last?.firstTimestamp == 106 * Self.second)
        // A sweep also hands over the records packets ended, once.
        Self.count(&table, late, at: 120)
        #expect(table.finished.count == 1)
        var next: [FlowRecord] = []
        table.sweep(now: 110 * Self.second, into: &next)
        #expect(next.map(\.key) == [late] && next.map(\.expiry) == [.idleTimeout] && table.finished.isEmpty)
        #expect(table.records.map(\.key) == [late, quiet])
        // Without timeouts a sweep ends nothing.
        var plain = FlowTable()
        plain.count(
            quiet, vlan: nil, hash: FlowTable.hash(quiet, vlan: nil), wireLength: 1, timestamp: 0, tcpFlags: 0,
            workstream: 0)
        var none: [FlowRecord] = []
        plain.sweep(now: .max, into: &none)
        #expect(none.isEmpty && plain.records.count == 1)
    }

    @Test func aSweptTableStillFindsEveryFlowItKeeps() {
        // Thousands of flows, a third of them idle at the sweep: the survivors are found again (a
        // packet adds to their record), the swept ones start new records, and nothing else moves.
        var table = FlowTable(timeouts: FlowTimeouts(idle: 10))
        var generator = SystemRandomNumberGenerator()
        let ports = (1...6_000).map { _ in UInt16.random(in: 1...UInt16.max, using: &generator) }
        let flows = Set(ports).map { Self.flow($0) }
        for (number, flow) in flows.enumerated() { Self.count(&table, flow, at: number % 3 == 0 ? 0 : 50) }
        var ended: [FlowRecord] = []
        table.sweep(now: 55 * Self.second, into: &ended)
        let swept = Set(flows.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
        #expect(Set(ended.map(\.key)) == swept && ended.count == swept.count)
        #expect(table.records.count == flows.count - swept.count)
        #expect(Set(table.records.map(\.key)).isDisjoint(with: swept))
        for flow in flows { Self.count(&table, flow, at: 56) }
        #expect(table.records.count == flows.count && table.finished.isEmpty)
        for record in table.records {
            #expect(record.packets == (swept.contains(record.key) ? 1 : 2))
        }
    }

    /// Sweeps in slices: each looks at `slice` records at most, from where the last stopped, and
    /// a pass over the whole table (new flows and moved records included) ends every idle record
    /// once; a full table's idlest end only when a pass completes.
    @Test func slicedSweepsCoverTheTableAPassAtATime() {
        var table = FlowTable(timeouts: FlowTimeouts(idle: 10))
        let flows = (1...5_000).map { Self.flow(UInt16($0)) }
        for (number, flow) in flows.enumerated() { Self.count(&table, flow, at: number % 3 == 0 ? 0 : 50) }
        let idle = Set(flows.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
        let late = Self.flow(6_000)
        var ended: [FlowRecord] = []
        var sweeps = 0
        var endedPerSweep: [Int] = []
        while Set(ended.map(\.key)) != idle.union([late]) && sweeps < 20 {
            let before = ended.count
            table.sweep(now: 55 * Self.second, into: &ended, slice: 600)
            sweeps += 1
            endedPerSweep.append(ended.count - before)
            // A flow that comes between sweeps is looked at in the same pass.
            if sweeps == 3 { Self.count(&table, late, at: 0) }
        }
        // 5,001 records in slices of 600, the ended ones leaving: a pass of several sweeps, each
        // ending no more than it looked at.
        #expect((2...9).contains(sweeps) && endedPerSweep.allSatisfy { $0 <= 600 } && endedPerSweep[0] < idle.count)
        #expect(ended.count == idle.count + 1 && ended.allSatisfy { $0.expiry == .idleTimeout })
        #expect(table.records.count == flows.count - idle.count)
        for flow in flows where !idle.contains(flow) { Self.count(&table, flow, at: 56) }
        #expect(table.records.count == flows.count - idle.count && table.records.allSatisfy { $0.packets == 2 })
        // Over a limit of 3,000 with 3,333 open: the idlest end when the pass reaches the table's
        // end (the sixth slice), not before.
        var full: [FlowRecord] = []
        for _ in 0..<5 { table.sweep(now: 57 * Self.second, into: &full, keepingAtMost: 3_000, slice: 600) }
        #expect(full.isEmpty)
        table.sweep(now: 57 * Self.second, into: &full, keepingAtMost: 3_000, slice: 600)
        #expect(full.count == 333 && full.allSatisfy { $0.expiry == .tableFull } && table.records.count == 3_000)
    }

    /// The command: `capture --export` sends records as they end, the rest when it stops, and a
    /// flow file asked for too gets every record.
    @Test func theCaptureCommandExportsAsFlowsEndAndItsFlowFileHasEveryRecord() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        let netisr = try CommandLineTests.netisr()
        let collector = try #require(UDPCollector())
        defer { close(collector.socket) }
        // Below the ephemeral range and apart from the ports of the test above: bursts to `port`,
        // and to `port + 1` a datagram every 50 ms until the capture stops, a flow still open then.
        let port = UInt16(32_400 + getpid() % 150 * 2)
        let csv = "/tmp/netisr-live-export-\(getpid()).csv"
        let errors = Shell.freshErrorFile("live-export")
        defer {
            unlink(csv)
            unlink(errors)
        }
        let sender = TestThread {
            Shell.waitUntil(file: errors, contains: "listening on")
            Self.sendBursts(20, 30, to: port, after: 800_000, pause: 900_000)
        }
        let capturing = Atomic<Bool>(true)
        let keepalive = TestThread {
            let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(descriptor) }
            while capturing.load(ordering: .relaxed) {
                _ = Loopback.withAddress(port: port + 1) {
                    sendto(descriptor, [UInt8](repeating: 1, count: 8), 8, 0, $0, $1)
                }
                usleep(50_000)
            }
        }
        let run = Shell.run(
            "'\(netisr)' capture -i lo --duration 3 --idle-timeout 0.3 --export 127.0.0.1:\(collector.port) "
                + "--flows '\(csv)' 2>'\(errors)'")
        capturing.store(false, ordering: .relaxed)
        sender.join()
        keepalive.join()
        #expect(run?.status == 0)
        let output = (run?.output ?? "") + (SharedFixtures.read(errors) ?? "")
        #expect(output.contains("exported as they ended"))
        var decoder = IPFIXDecoder()
        var sent: [[Substring]] = []
        for datagram in collector.receive(count: 10_000) {
            let decoded = decoder.decode(datagram)
            sent += try #require(decoded).records.map { $0.split(separator: " ") }
        }
        #expect(output.contains("netisr: exported \(sent.count) flow records in "))
        let ours = sent.filter { $0[3] == "\(port)" && $0[4] == "17" }
        #expect(ours.map { $0[10].split(separator: "/").first.map(String.init) } == ["20", "30"])
        // The file: a header and every record sent, ours with the same counts and end.
        let rows = try #require(SharedFixtures.read(csv)).split(separator: "\n").dropFirst().map {
            $0.split(separator: ",", omittingEmptySubsequences: false)
        }
        #expect(rows.count == sent.count)
        let ourRows = rows.filter { $0[3] == "\(port)" && $0[4] == "17" }
        #expect(ourRows.map { String($0[8]) } == ["20", "30"])
        #expect(ourRows.first.map { String($0[14]) } == "idle-timeout")
        // The flow still open when the capture stopped went out then, and is in the file.
        let open = sent.filter { $0[3] == "\(port + 1)" && $0[4] == "17" }
        #expect(open.count == 1 && open.first.map { $0.firstIndex(of: "end").map { open[0][$0 + 1] } } == "4")
        #expect(rows.filter { $0[3] == "\(port + 1)" && $0[4] == "17" && $0[14].isEmpty }.count == 1)
    }

    @Test func aFullTableEndsTheFlowsIdleLongest() {
        var table = FlowTable(timeouts: FlowTimeouts(idle: 1_000))
        // 100 flows, each last seen at a different time, in a scrambled order.
        let order = (0..<100).map { ($0 * 37) % 100 }
        for number in order { Self.count(&table, Self.flow(UInt16(number + 1)), at: Double(number)) }
        var ended: [FlowRecord] = []
        table.sweep(now: 100 * Self.second, into: &ended, keepingAtMost: 30)
        #expect(ended.count == 70 && ended.allSatisfy { $0.expiry == .tableFull })
        #expect(Set(ended.map(\.key.sourcePort)) == Set((1...70).map(UInt16.init)))
        #expect(Set(table.records.map(\.key.sourcePort)) == Set((71...100).map(UInt16.init)))
        // The flows kept are found again; an ended one starts a new record.
        for port in [UInt16(71), 100, 1] { Self.count(&table, Self.flow(port), at: 101) }
        #expect(table.records.count == 31 && table.finished.isEmpty)
        #expect(table.records.filter { $0.packets == 2 }.map(\.key.sourcePort).sorted() == [71, 100])
    }

    @Test(arguments: [0, 1, 5, 40])
    func theLargestFlowsAreTheTopOfTheTableSortedByBytes(count: Int) {
        var table = FlowTable()
        var generator = SystemRandomNumberGenerator()
        for port in 1...UInt16(30) {
            let flow = Self.flow(port)
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let length = Int.random(in: 60...70, using: &generator)
                table.count(
                    flow, vlan: nil, hash: FlowTable.hash(flow, vlan: nil), wireLength: length, timestamp: 0,
                    tcpFlags: 0,
                    workstream: 0)
            }
        }
        let largest = table.largest(count)
        #expect(largest.map(\.bytes) == Array(table.records.map(\.bytes).sorted(by: >).prefix(count)))
        #expect(Set(largest.map(\.key)).count == largest.count)
    }

    /// `capture --flows` without `--export`: the file grows while the capture runs (a record ended
    /// idle is in it before the capture stops) and holds every record at the end.
    @Test func theCaptureCommandWritesItsFlowFileAsFlowsEnd() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        let netisr = try CommandLineTests.netisr()
        // 32700…32767: apart from the ports of the tests above, below the ephemeral range.
        let port = UInt16(32_700 + getpid() % 34 * 2)
        let csv = "/tmp/netisr-live-flowfile-\(getpid()).csv"
        let errors = Shell.freshErrorFile("live-flowfile")
        defer {
            unlink(csv)
            unlink(errors)
        }
        let capture = TestThread {
            _ = Shell.run(
                "'\(netisr)' capture -i lo --duration 4 --idle-timeout 0.3 --flows '\(csv)' > /dev/null 2>'\(errors)'")
        }
        Shell.waitUntil(file: errors, contains: "listening on")
        Self.sendBursts(20, 0, to: port, after: 300_000, pause: 0)
        usleep(3_000_000)  // the record ended idle at ≈ 0.6 s; swept and written within two 1 s ticks
        func ours() -> [[Substring]] {
            (SharedFixtures.read(csv) ?? "").split(separator: "\n").dropFirst().map {
                $0.split(separator: ",", omittingEmptySubsequences: false)
            }.filter { $0[3] == "\(port)" && $0[4] == "17" }
        }
        let whileCapturing = ours()
        capture.join()
        #expect(whileCapturing.map { [$0[8], $0[14]] } == [["20", "idle-timeout"]])
        #expect(ours().count == 1)
        #expect(SharedFixtures.read(csv)?.hasPrefix("src,sport,dst,") == true)
    }

    /// Datagrams to 127.0.0.1:`port` from one socket (one flow): `first`, then after `pause`
    /// microseconds `second` more.
    static func sendBursts(_ first: Int, _ second: Int, to port: UInt16, after delay: useconds_t, pause: useconds_t) {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(descriptor) }
        let payload = [UInt8](repeating: 0x17, count: 64)
        usleep(delay)
        for count in [first, second] {
            for _ in 0..<count {
                _ = Loopback.withAddress(port: port) { sendto(descriptor, payload, payload.count, 0, $0, $1) }
            }
            usleep(pause)
        }
    }

    static func realtime() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * second + UInt64(now.tv_nsec)
    }

    @Test(arguments: [(DispatchPolicy.deferred, false), (.direct, false), (.hybrid, false), (.deferred, true)])
    func recordsLeaveAsTheyEndWhileTheCaptureRuns(dispatch: DispatchPolicy, fanout: Bool) throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        let collector = try #require(UDPCollector())
        defer { close(collector.socket) }
        // Four ports per process in 30000…32399: apart from the other live tests' ports (MetricsTests
        // 20000…29999, LiveCaptureTests 61000…64999) and below the ephemeral range (32768…60999).
        let port =
            UInt16(30_000 + getpid() % 600 * 4) + UInt16(dispatch == .direct ? 1 : dispatch == .hybrid ? 2 : 0)
            + (fanout ? 3 : 0)
        var configuration = ReplayConfiguration()
        configuration.threads = 2
        configuration.dispatch = dispatch
        configuration.flowTimeouts = FlowTimeouts(idle: 0.3, active: 60)
        let csv = "/tmp/netisr-live-flows-\(getpid())-\(port).csv"
        defer { unlink(csv) }
        let export = LiveFlowExport(
            exporter: try IPFIXExporter(destination: "127.0.0.1:\(collector.port)"),
            file: try FlowRecordWriter(path: csv), interval: 0.1)
        let received = Mutex<[(time: UInt64, bytes: [UInt8])]>([])
        let listening = Atomic<Bool>(true)
        let listener = TestThread {
            while listening.load(ordering: .relaxed) {
                for datagram in collector.receive(count: 1) {
                    received.withLock { $0.append((Self.realtime(), datagram)) }
                }
            }
        }
        let ready = CaptureReady()
        let sender = TestThread {
            ready.wait()
            Self.sendBursts(20, 30, to: port, after: 300_000, pause: 900_000)
        }
        let result = try Replay(configuration).run(
            interface: "lo", duration: 2.2, fanout: fanout, flowExport: export
        ) { _, _ in ready.signal() }
        let captureEnded = Self.realtime()
        // Our flow's rows in the flow file: (packets forward, ended by).
        func fileRows() throws -> [[Substring]] {
            try #require(SharedFixtures.read(csv)).split(separator: "\n").dropFirst().map {
                $0.split(separator: ",", omittingEmptySubsequences: false)
            }
        }
        let writtenDuringCapture = try fileRows().filter { $0[3] == "\(port)" && $0[4] == "17" }
        sender.join()
        export.send(result.flowsInOrder())
        try export.finish()
        usleep(200_000)
        listening.store(false, ordering: .relaxed)
        listener.join()

        // Our flow's records as the collector decoded them, with when each arrived.
        var decoder = IPFIXDecoder()
        var ours: [(time: UInt64, fields: [Substring])] = []
        for datagram in received.withLock({ $0 }) {
            let decoded = decoder.decode(datagram.bytes)
            let message = try #require(decoded)
            for record in message.records {
                let fields = record.split(separator: " ")
                if fields[3] == "\(port)" && fields[4] == "17" { ours.append((datagram.time, fields)) }
            }
        }
        // Two bursts 0.9 s apart with a 0.3 s idle timeout: two records, 20 then 30 packets; the
        // first ended idle and reached the collector before the capture stopped.
        #expect(ours.map { $0.fields[10].split(separator: "/").first.map(String.init) } == ["20", "30"])
        #expect(
            ours.first.flatMap { record in record.fields.firstIndex(of: "end").map { record.fields[$0 + 1] } } == "1")
        #expect(ours.first.map { $0.time < captureEnded } == true)
        // The flow file had the first record before the capture stopped, and has both now.
        #expect(writtenDuringCapture.first.map { [$0[8], $0[14]] } == ["20", "idle-timeout"])
        let rows = try fileRows()
        #expect(rows.filter { $0[3] == "\(port)" && $0[4] == "17" }.map { $0[8] } == ["20", "30"])
        // Every record went out once, to the collector and to the file; the count adds up.
        let summary = export.summary
        #expect(summary.failedDatagrams == 0 && summary.firstError == nil)
        #expect(summary.records == rows.count && export.recordsWritten == rows.count)
        #expect(result.flowsExportedDuringCapture > 0)
        #expect(result.flowCount == result.flows.count + result.flowsExportedDuringCapture)
        #expect(rows.count == result.flowCount)
        #expect(result.snapshot.totals.offered == result.snapshot.totals.accountedFor)
        let udpFrames = result.conversations[.udp, default: []].filter { $0.portB == port }.reduce(0) { $0 + $1.frames }
        let recordPackets = rows.filter { $0[3] == "\(port)" && $0[4] == "17" }.reduce(0) {
            $0 + Int($1[8])! + Int($1[10])!
        }
        #expect(udpFrames == 50 && recordPackets == 50)
    }
}
