// A live capture's flow tables stay bounded without timeouts and without anywhere to send records:
// a sweep trims a full table at the end of each pass (the flows idle longest end, `tableFull`) and
// hands over the records a new TCP connection ended, whether or not timeouts are set. Records that
// leave with nowhere to go are counted, and their frames still reach the conversation tables.
// The live tests need root (CAP_NET_RAW) and skip with a message otherwise (CI runs as root).

import NetISR
import PacketWire
import TestSupport
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct BoundedCaptureTests {
    static let second: UInt64 = 1_000_000_000

    static func count(_ table: inout FlowTable, _ flow: FlowKey, at seconds: UInt64, tcpFlags: UInt8 = 0) {
        table.count(
            flow, vlan: nil, hash: FlowTable.hash(flow, vlan: nil), wireLength: 100, timestamp: seconds * second,
            tcpFlags: tcpFlags, workstream: 0)
    }

    static func flow(_ port: UInt16, ipProtocol: UInt8 = 17) -> FlowKey {
        FlowKey(
            source: IPAddress("10.0.0.1")!, destination: IPAddress("10.0.0.2")!, sourcePort: port, destinationPort: 53,
            ipProtocol: ipProtocol)
    }

    @Test func withoutTimeoutsASweepTrimsAFullTableAtTheEndOfAPass() {
        var table = FlowTable()
        // 100 flows, flow N last seen at N seconds, counted in a scrambled order.
        for number in (0..<100).map({ ($0 * 37) % 100 + 1 }) {
            Self.count(&table, Self.flow(UInt16(number)), at: UInt64(number))
        }
        // A TCP connection closed (FIN) and opened again (a pure SYN) on the same ports.
        let tcp = Self.flow(7, ipProtocol: 6)
        for (seconds, flags) in [(200, 0x02), (201, 0x11), (202, 0x02)] as [(UInt64, UInt8)] {
            Self.count(&table, tcp, at: seconds, tcpFlags: flags)
        }
        #expect(table.finished.count == 1 && table.records.count == 101)
        var ended: [FlowRecord] = []
        // Slices of 40 over 101 records: the ended connection leaves at once, nothing expires (the
        // clock is at its end), and the trim waits for the pass to end, at the third sweep.
        table.sweep(now: .max, into: &ended, keepingAtMost: 30, slice: 40)
        #expect(ended.map(\.expiry) == [.endOfFlow] && ended.first?.packets == 2)
        table.sweep(now: .max, into: &ended, keepingAtMost: 30, slice: 40)
        #expect(ended.count == 1 && table.records.count == 101 && table.finished.isEmpty)
        table.sweep(now: .max, into: &ended, keepingAtMost: 30, slice: 40)
        let trimmed = ended.dropFirst()
        #expect(trimmed.count == 71 && trimmed.allSatisfy { $0.expiry == .tableFull })
        #expect(Set(trimmed.map(\.key.sourcePort)) == Set((1...71).map(UInt16.init)))
        #expect(Set(table.records.map(\.key.sourcePort)) == Set((72...100).map(UInt16.init) + [7]))
        // The flows kept are found again; a trimmed one starts a new record.
        for port in [UInt16(72), 100, 1] { Self.count(&table, Self.flow(port), at: 300) }
        #expect(table.records.count == 31 && table.finished.isEmpty)
        #expect(table.records.filter { $0.packets == 2 }.map(\.key.sourcePort).sorted() == [72, 100])
        // Within the limit, a whole pass ends nothing.
        var none: [FlowRecord] = []
        table.sweep(now: .max, into: &none, keepingAtMost: 31)
        #expect(none.isEmpty && table.records.count == 31)
    }

    /// Sends 3 datagrams to 127.0.0.1:`port` from each of `flows` sockets (all open until the end,
    /// so no two flows share a source port), `pause` microseconds between flows.
    static func sendFlows(_ flows: Int, to port: UInt16, after delay: useconds_t, pause: useconds_t) {
        let sockets = (0..<flows).map { _ in socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0) }
        defer { for descriptor in sockets { close(descriptor) } }
        let payload = [UInt8](repeating: 0x2A, count: 32)
        usleep(delay)
        for descriptor in sockets {
            for _ in 0..<3 {
                _ = Loopback.withAddress(port: port) { sendto(descriptor, payload, payload.count, 0, $0, $1) }
            }
            usleep(pause)
        }
    }

    @Test(arguments: [DispatchPolicy.deferred, .direct])
    func aCaptureWithNowhereToSendRecordsKeepsItsTablesBounded(dispatch: DispatchPolicy) throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        // 10000…18999 (the command's test below takes the third port), apart from the other live tests' ports (LiveFlowExportTests 30000…32767,
        // MetricsTests 20000…29999, LiveCaptureTests 61000…64999).
        let port = UInt16(10_000 + getpid() % 3_000 * 3) + (dispatch == .direct ? 1 : 0)
        var configuration = ReplayConfiguration()
        configuration.threads = 2
        configuration.dispatch = dispatch
        let export = LiveFlowExport(exporter: nil, interval: 0.1, maximumFlows: 8)
        #expect(!export.sendsRecords)
        let ready = CaptureReady()
        let sender = TestThread {
            ready.wait()
            Self.sendFlows(40, to: port, after: 300_000, pause: 15_000)
        }
        let result = try Replay(configuration).run(interface: "lo", duration: 1.6, flowExport: export) { _, _ in
            ready.signal()
        }
        sender.join()
        // 40 flows through tables of at most 8 (4 per workstream) open records: most left during
        // the capture, counted; none was exported.
        let kept = result.flows.filter { $0.key.destinationPort == port || $0.key.sourcePort == port }
        #expect(result.flowsDiscardedDuringCapture >= 40 - kept.count && kept.count < 40)
        #expect(result.flowsExportedDuringCapture == 0)
        #expect(result.flowCount == result.flows.count + result.flowsDiscardedDuringCapture)
        // Their frames are all in the conversation table, three to a flow.
        let rows = result.conversations[.udp, default: []].filter { $0.portB == port }
        #expect(rows.count == 40 && rows.allSatisfy { $0.framesAToB == 3 && $0.framesBToA == 0 })
        #expect(kept.allSatisfy { $0.packets == 3 })
        #expect(result.snapshot.totals.offered == result.snapshot.totals.accountedFor)
    }

    /// The command: `capture` with neither `--flows` nor `--export` bounds its tables too, and
    /// says how many records it let go.
    @Test func theCaptureCommandCountsTheRecordsItLetGo() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        let netisr = try CommandLineTests.netisr()
        let port = UInt16(10_000 + getpid() % 3_000 * 3) + 2
        let errors = Shell.freshErrorFile("bounded")
        defer { unlink(errors) }
        let sender = TestThread {
            Shell.waitUntil(file: errors, contains: "listening on")
            Self.sendFlows(30, to: port, after: 400_000, pause: 30_000)
        }
        let run = Shell.run("'\(netisr)' capture -i lo --duration 2.5 --max-flows 4 2>'\(errors)'")
        sender.join()
        #expect(run?.status == 0)
        let output = (run?.output ?? "") + (SharedFixtures.read(errors) ?? "")
        let letGo = output.firstMatch(of: /; (\d+) of them ended during the capture, counted but not kept/)
        #expect(letGo.flatMap { Int($0.1) }.map { $0 >= 20 } == true, "\(output)")
    }
}
