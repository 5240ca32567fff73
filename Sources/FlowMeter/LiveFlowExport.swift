// LiveFlowExport: sends flow records to an IPFIX collector and/or appends them to a flow file while
// a live capture runs, as a NetFlow probe does (softflowd, nfprobe; argus -w), instead of all of
// them when the capture stops.
//
// Eight times every `interval` seconds the capture has each workstream sweep an eighth of its flow
// table (`FlowTable.sweep`'s slices, so the whole table once per interval, and a worker with a
// million flows pauses a few milliseconds at a time rather than for the whole table) on the thread
// that owns it: through a queue-less protocol the reader schedules on every
// workstream (deferred and hybrid dispatch), or in the reader itself where the handlers run there
// (direct dispatch, fanout). A sweep moves the records that ended — by a packet or by the clock —
// into the shared outbox; this object's thread takes the outbox, sends it and writes it. The outbox
// mutex is taken once per sweep and once per send, never per packet. Sent and written records are
// let go, so a long capture's memory holds the open flows only. With neither a collector nor a
// file the sweeps still bound the tables (`maximumFlows`): what they end is counted and let go.

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Exports flow records over IPFIX and/or writes them to a file as their timeouts end them, during a
/// live capture.
///
/// ```swift
/// var configuration = ReplayConfiguration()
/// configuration.flowTimeouts = FlowTimeouts(idle: 15, active: 1800)
/// let export = LiveFlowExport(
///     exporter: try IPFIXExporter(destination: "127.0.0.1:9995"), file: try FlowRecordWriter(path: "flows.csv"))
/// let result = try Replay(configuration).run(interface: "eth0", duration: 60, flowExport: export)
/// export.send(result.flowsInOrder())  // the records still open at the end
/// try export.finish()
/// ```
public final class LiveFlowExport: Sendable {
    /// Seconds between sends, and between the starts of passes over a flow table (a pass sweeps
    /// it in `slicesPerInterval` slices).
    public let interval: Double
    /// The collector as given, if records are exported.
    public let destination: String?
    /// Whether the records the sweeps end go anywhere (a collector or a file); if not, they are
    /// only counted (`ReplayResult.flowsDiscardedDuringCapture`).
    public let sendsRecords: Bool
    /// The most open flows the tables hold, all workstreams together: past it, each sweep ends the
    /// records idle longest (`FlowExpiry.tableFull`, IPFIX's "lack of resources"), so a flood of
    /// new flows costs bounded memory. Between sweeps a table may grow by one interval's new flows.
    public let maximumFlows: Int

    private struct Sender: ~Copyable {
        var exporter: IPFIXExporter?
        var file: FlowRecordWriter?
        var summary = IPFIXExportSummary()
        /// The file's first failed write (nothing more is written to it then).
        var fileError: FlowRecordWriter.WriteError?
        var recordsWritten = 0
    }

    private let sender: Mutex<Sender>
    private let outbox = Mutex<[FlowRecord]>([])
    private let stopping = Atomic<Bool>(false)
    private let sweptRecords = Atomic<Int>(0)

    /// Exports through `exporter` and writes to `file` (either may be nil: with both nil, the
    /// sweeps only keep the tables within `maximumFlows`), sending every `interval` seconds (at
    /// least 10 ms) and sweeping each table once per interval.
    public init(
        exporter: consuming IPFIXExporter?, file: consuming FlowRecordWriter? = nil, interval: Double = 1,
        maximumFlows: Int = 1 << 20
    ) {
        destination = exporter?.destination
        sendsRecords = exporter != nil || file != nil
        self.interval = max(interval, 0.01)
        self.maximumFlows = max(maximumFlows, 1)
        sender = Mutex(Sender(exporter: exporter, file: file))
    }

    /// Sends and writes `flows` now (the records still open when the capture stopped, say).
    public func send(_ flows: [FlowRecord]) {
        sender.withLock { sender in
            if sender.exporter != nil {
                sender.summary.add(sender.exporter!.export(flows, exportTime: UInt32(clamping: time(nil))))
            }
            guard sender.fileError == nil, sender.file != nil else { return }
            do throws(FlowRecordWriter.WriteError) {
                try sender.file!.write(flows)
                sender.recordsWritten += flows.count
            } catch { sender.fileError = error }
        }
    }

    /// Everything exported so far.
    public var summary: IPFIXExportSummary { sender.withLock { $0.summary } }

    /// Records written to the file so far.
    public var recordsWritten: Int { sender.withLock { $0.recordsWritten } }

    /// Ends and closes the flow file, if any (after the last `send`); throws the file's first
    /// failed write, if one failed.
    public func finish() throws(FlowRecordWriter.WriteError) {
        if let failure = sender.withLock({ $0.fileError }) { throw failure }
        let file = sender.withLock { $0.file.take() }
        try file?.finish()
    }

    /// Records that sweeps ended during the capture (sent, in the outbox until the next send, or
    /// let go when there is nowhere to send them).
    var sweptCount: Int { sweptRecords.load(ordering: .relaxed) }

    /// The wall clock in ns since the epoch: the time base of a live capture's timestamps.
    static func now() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Sweeps per interval, each through a slice of the table.
    static let slicesPerInterval = 8

    /// Seconds between sweeps.
    var sweepInterval: Double { interval / Double(Self.slicesPerInterval) }

    /// Sweeps a slice of one workstream's flow table (of `workstreams`, which share
    /// `maximumFlows`) into the outbox. Only on the thread that runs that workstream's handlers.
    func sweep(_ accounts: UnsafeMutablePointer<TrafficAccounts>, workstreams: Int, now: UInt64 = LiveFlowExport.now())
    {
        var ended: [FlowRecord] = []
        let limit = (maximumFlows + max(workstreams, 1) - 1) / max(workstreams, 1)
        let open = accounts.pointee.flows.records.count
        let slice = max(1_024, (open + Self.slicesPerInterval - 1) / Self.slicesPerInterval)
        accounts.pointee.sweepFlows(now: now, into: &ended, keepingAtMost: limit, slice: slice)
        guard !ended.isEmpty else { return }
        sweptRecords.wrappingAdd(ended.count, ordering: .relaxed)
        if sendsRecords { outbox.withLock { $0.append(contentsOf: ended) } }
    }

    /// Starts the thread that sends the outbox every `interval`.
    func start() -> ThreadHandle {
        ThreadHandle { [self] in
            while !stopping.load(ordering: .relaxed) {
                let due = Self.now() + UInt64(interval * 1e9)
                while !stopping.load(ordering: .relaxed) && Self.now() < due { usleep(10_000) }
                sendOutbox()
            }
        }
    }

    /// Stops the thread `start` returned and sends what the sweeps left in the outbox.
    func stop(_ thread: ThreadHandle) {
        stopping.store(true, ordering: .relaxed)
        thread.join()
        sendOutbox()
    }

    private func sendOutbox() {
        let ended = outbox.withLock { outbox in
            let taken = outbox
            outbox = []
            return taken
        }
        if !ended.isEmpty { send(ended) }
    }
}

extension IPFIXExportSummary {
    /// Adds another export's counts (keeping the first error).
    mutating func add(_ other: IPFIXExportSummary) {
        datagrams += other.datagrams
        records += other.records
        failedDatagrams += other.failedDatagrams
        failedRecords += other.failedRecords
        if firstError == nil { firstError = other.firstError }
    }
}
