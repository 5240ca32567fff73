// PrometheusExposition: the engine's counters, drops, kernel counters and queueing-delay
// histograms in Prometheus' text format (version 0.0.4), for `netisr capture --metrics`.

import NetISR

/// Renders metrics as Prometheus text.
public enum PrometheusExposition {
    /// The exposition: engine counters per workstream × protocol, totals and drops by reason,
    /// kernel counters (live capture) and queueing-delay histograms.
    public static func render(
        _ snapshot: NetISRSnapshot, kernel: (received: UInt64, dropped: UInt64)? = nil,
        delays: [(name: String, cumulative: [Int], sumSeconds: Double, count: Int)] = [],
        frames: Int? = nil
    ) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples {
                out +=
                    sample.labels.isEmpty ? "\(name) \(sample.value)\n" : "\(name){\(sample.labels)} \(sample.value)\n"
            }
        }
        func perWork(_ value: (NetISRSnapshot.WorkCounters) -> Int) -> [(labels: String, value: String)] {
            snapshot.work.map { ("workstream=\"\($0.workstream)\",protocol=\"\($0.name)\"", String(value($0))) }
        }
        metric("netisr_dispatched_total", "counter", "Packets handled directly in the caller.", perWork(\.dispatched))
        metric(
            "netisr_hybrid_dispatched_total", "counter", "Packets handled in the caller by hybrid dispatch.",
            perWork(\.hybridDispatched))
        metric("netisr_queued_total", "counter", "Packets queued for a workstream.", perWork(\.queued))
        metric("netisr_handled_total", "counter", "Packets handled.", perWork(\.handled))
        metric("netisr_queue_drops_total", "counter", "Packets dropped at a full queue.", perWork(\.queueDrops))
        metric("netisr_queue_length", "gauge", "Packets queued now.", perWork(\.length))
        metric("netisr_queue_watermark", "gauge", "Highest queue length seen.", perWork(\.watermark))
        let totals = snapshot.totals
        metric(
            "netisr_drops_total", "counter", "Packets dropped, by reason.",
            [
                ("reason=\"queue-full\"", String(totals.queueDrops)),
                ("reason=\"no-handler\"", String(totals.noHandlerDrops)),
                ("reason=\"drained-at-unregister\"", String(totals.drainedAtUnregister)),
                ("reason=\"discarded-at-stop\"", String(totals.discardedAtStop)),
            ] + (kernel.map { [("reason=\"kernel\"", String($0.dropped))] } ?? []))
        metric("netisr_offered_total", "counter", "Packets offered to the engine.", [("", String(totals.offered))])
        metric("netisr_wakeups_total", "counter", "Worker wake-ups from sleep.", [("", String(totals.wakeups))])
        if let kernel {
            metric(
                "netisr_kernel_received_total", "counter", "Packets the kernel's ring received.",
                [("", String(kernel.received))])
        }
        if let frames {
            metric("netisr_frames_total", "counter", "Frames read from the source.", [("", String(frames))])
        }
        if !delays.isEmpty {
            out += "# HELP netisr_queueing_delay_seconds Kernel receive to handler, per protocol.\n"
            out += "# TYPE netisr_queueing_delay_seconds histogram\n"
            for delay in delays {
                for (index, bound) in DelayHistogram.bounds.enumerated() {
                    let seconds = Double(bound) / 1e6
                    out +=
                        "netisr_queueing_delay_seconds_bucket{protocol=\"\(delay.name)\",le=\"\(seconds)\"} \(delay.cumulative[index])\n"
                }
                out +=
                    "netisr_queueing_delay_seconds_bucket{protocol=\"\(delay.name)\",le=\"+Inf\"} \(delay.cumulative.last ?? 0)\n"
                out += "netisr_queueing_delay_seconds_sum{protocol=\"\(delay.name)\"} \(delay.sumSeconds)\n"
                out += "netisr_queueing_delay_seconds_count{protocol=\"\(delay.name)\"} \(delay.count)\n"
            }
        }
        return out
    }
}
