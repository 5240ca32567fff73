// The live view of `netisr capture --stats`, on standard error (standard output keeps the
// report): on a terminal, a table redrawn in place every interval (frame and bit rates,
// per-workstream × protocol packet rates, queue lengths and watermarks, drops by reason, top
// flows); otherwise one line per interval, for logs.

import FlowMeter
import NetISR
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

final class LiveStatisticsView: Sendable {
    private let interface: String
    private let interval: Double
    private let terminal = isatty(2) == 1
    private let previous = Mutex<
        (handled: [String: Int], protocolBytes: [String: Int], frames: Int, bytes: Int, elapsed: Double)
    >(([:], [:], 0, 0, 0))

    init(interface: String, interval: Double) {
        self.interface = interface
        self.interval = interval
    }

    var view: LiveView { LiveView(interval: interval) { frame in self.draw(frame) } }

    private func draw(_ frame: LiveView.Frame) {
        let (last, lastProtocolBytes, lastFrames, lastBytes, lastElapsed) = previous.withLock { $0 }
        let span = max(frame.elapsed - lastElapsed, 1e-6)
        let framesPerSecond = Double(frame.frames - lastFrames) / span
        let megabits = Double(frame.wireBytes - lastBytes) * 8 / span / 1e6
        var handled: [String: Int] = [:]
        for row in frame.snapshot.work { handled["\(row.workstream)/\(row.name)"] = row.handled }
        var protocolBytes: [String: Int] = [:]
        for row in frame.protocolBytes { protocolBytes["\(row.workstream)/\(row.protocol)"] = row.bytes }
        previous.withLock { $0 = (handled, protocolBytes, frame.frames, frame.wireBytes, frame.elapsed) }
        let totals = frame.snapshot.totals
        if !terminal {
            writeStandardError(
                "t=\(Int(frame.elapsed))s frames=\(frame.frames) fps=\(Int(framesPerSecond)) mbps=\(Int(megabits)) "
                    + "kernel-received=\(frame.kernel.received) kernel-dropped=\(frame.kernel.dropped) "
                    + "queue-drops=\(totals.queueDrops) queued-now=\(totals.stillQueued)\n")
            return
        }
        var out = "\u{1B}[H\u{1B}[2J"
        out +=
            "netisr capture on \(interface): \(Int(frame.elapsed)) s, \(frame.frames) frames, "
            + "\(Int(framesPerSecond)) frames/s, \(Int(megabits)) Mbit/s\n"
        out += "kernel: received \(frame.kernel.received), dropped \(frame.kernel.dropped)\n\n"
        out += "WSID Name        pkts/s    Mbit/s     Len   WMark    QDrops\n"
        for row in frame.snapshot.work where row.name != "ether" {
            let key = "\(row.workstream)/\(row.name)"
            let rate = Double(row.handled - (last[key] ?? 0)) / span
            let bits = Double((protocolBytes[key] ?? 0) - (lastProtocolBytes[key] ?? 0)) * 8 / span / 1e6
            out +=
                pad(String(row.workstream), 4) + " " + pad(row.name, 6, left: true) + pad(String(Int(rate)), 11)
                + pad(String(Int(bits)), 10) + pad(String(row.length), 8) + pad(String(row.watermark), 8)
                + pad(String(row.queueDrops), 10) + "\n"
        }
        out +=
            "\ndrops: queue-full \(totals.queueDrops), no-handler \(totals.noHandlerDrops), kernel \(frame.kernel.dropped)\n"
        out += "\ntop flows since the last report:\n"
        for flow in frame.topFlows {
            let kilobits = Int(Double(flow.bytes) * 8 / span / 1e3)
            out += "  \(flow.key)  \(kilobits) kbit/s  \(flow.packets) packets  \(flow.bytes) bytes\n"
        }
        writeStandardError(out)
    }

    private func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + padding : padding + text
    }
}
