// Replay: reads capture files through the engine into flow accounting.
//
// One reader thread (the caller's) plays the NIC and its driver: it reads records in bursts,
// parses each once to compute its flow id (the symmetric Toeplitz hash of the address pair, as
// an RSS NIC would), copies it into the PacketArena and dispatches bursts to `ether`. From there
// ReplayRegistration's protocols take over. Lossless by default (`whenFull: .wait`): a file can
// wait, so the result is the same for every thread count, dispatch policy and ordering policy.
// `--drop` switches to drop-tail to show what a live system would lose.

import NetISR
import PacketWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How to replay.
public struct ReplayConfiguration: Sendable {
    /// How fast to feed packets.
    public enum Speed: Sendable, Equatable {
        /// As fast as possible.
        case maximum
        /// Paced by the capture's timestamps, multiplied by this factor (1 = real time).
        case factor(Double)
    }

    /// Workstreams (default: one per CPU).
    public var threads: Int?
    /// The engine-wide dispatch policy (ether stays direct, as FreeBSD registers it).
    public var dispatch: DispatchPolicy = .deferred
    /// How ip, ip6 and arp packets are ordered: `flow` (default), `source` or `cpu`.
    public var ordering: String = "flow"
    /// Queue limit per protocol and workstream (0: the engine default).
    public var queueLimit = 0
    /// Bind workstreams to CPUs.
    public var bindThreads = false
    /// Workers poll instead of sleeping.
    public var pollMode = false
    /// Drop at full queues instead of waiting (what a live system would lose).
    public var dropWhenFull = false
    /// Pacing.
    public var speed: Speed = .maximum
    /// Called from the reader thread about every 64 MiB and at the end of each file:
    /// (file index, bytes read, file size if known).
    public var progress: (@Sendable (Int, Int, Int?) -> Void)?
    /// Polled after every burst: true stops the replay as `cancel()` does (for signal handlers).
    public var shouldStop: (@Sendable () -> Bool)?

    /// Creates the default configuration.
    public init() {}
}

/// Runs replays; `cancel()` from another thread (a signal handler's watcher) stops one cleanly.
public final class Replay: Sendable {
    private let configuration: ReplayConfiguration
    private let cancelled = Atomic<Bool>(false)

    /// Prepares a replay.
    public init(_ configuration: ReplayConfiguration = ReplayConfiguration()) {
        self.configuration = configuration
    }

    /// Asks a running replay to stop after its current burst; the result covers what was read.
    public func cancel() { cancelled.store(true, ordering: .relaxed) }

    private var isCancelled: Bool {
        if cancelled.load(ordering: .relaxed) { return true }
        if configuration.shouldStop?() == true {
            cancelled.store(true, ordering: .relaxed)
            return true
        }
        return false
    }

    /// Replays `files` in order. Files that cannot be read, or that are damaged, are reported in
    /// `errors` (records before the damage are counted); the others are processed regardless.
    public func run(files: [String]) throws(NetISRError) -> ReplayResult {
        let session = try Session(configuration)
        var errors: [ReplayError] = []
        var state = ReaderState(workstreams: session.workstreams, sourceIsFlow: configuration.ordering != "source")
        for (index, file) in files.enumerated() {
            if isCancelled { break }
            do {
                try replay(file, index: index, session: session, state: &state)
            } catch let error as CaptureError {
                errors.append(ReplayError(file: file, error: error))
            } catch {
                errors.append(ReplayError(file: file, error: CaptureError(.io, at: 0, "\(error)")))
            }
        }
        return session.finish(errors: errors, kernelDrops: nil, cancelled: cancelled.load(ordering: .relaxed))
    }

    /// Captures from a live interface until `duration` seconds have passed, `count` frames were
    /// read, or the replay is cancelled (Ctrl-C); same protocols, accounting and report as for
    /// files, plus the kernel's drop count. Zero-copy: packets point into the ring, and a block
    /// goes back to the kernel only when every packet taken from it has been handled or dropped
    /// (frames rebuilt with their VLAN tag are copied to the arena instead).
    ///
    /// - Parameters:
    ///   - metrics: serve Prometheus metrics (engine counters, drops, kernel counters, queueing
    ///     delay per protocol) on this address while capturing.
    ///   - liveView: called from the reader thread every `interval` seconds with the state so far.
    public func run(
        interface: String, options: LiveCaptureOptions = LiveCaptureOptions(), filter: String? = nil,
        duration: Double? = nil, count: Int? = nil, write: CaptureWriter? = nil,
        metrics: (host: String, port: UInt16)? = nil, liveView: LiveView? = nil
    ) throws -> ReplayResult {
        let capture = try LiveCapture(interface: interface, options: options)
        if let filter { try capture.attachFilter(filter) }
        let session = try Session(configuration, measureDelays: true)
        let ring = ReleaseCounters(
            workstreams: session.workstreams, regions: capture.blockCount, regionSize: capture.blockSize,
            base: capture.ringBase)
        // Packets point into the capture's mapping and count through `ring`: both must outlive them.
        return try withExtendedLifetime((capture, ring)) {
            try live(
                capture, ring, session, duration: duration, count: count, write: write, metrics: metrics,
                liveView: liveView)
        }
    }

    private func live(
        _ capture: LiveCapture, _ ring: ReleaseCounters, _ session: Session, duration: Double?, count: Int?,
        write: CaptureWriter?, metrics: (host: String, port: UInt16)?, liveView: LiveView?
    ) throws -> ReplayResult {
        let status = LiveStatus()
        let server = try metrics.map { endpoint in
            try MetricsServer(host: endpoint.host, port: endpoint.port) {
                [engine = session.engine, accounts = session.accounts] in
                PrometheusExposition.render(
                    engine.snapshot(), kernel: status.kernel, delays: accounts.delays?.snapshot() ?? [],
                    frames: status.frames.load(ordering: .relaxed))
            }
        }
        defer { server?.stop() }
        var state = ReaderState(workstreams: session.workstreams, sourceIsFlow: configuration.ordering != "source")
        let started = LiveStatus.seconds()
        let deadline = duration.map { started + $0 }
        var nextView = started + (liveView?.interval ?? .infinity)
        var talkers = FlowTable()
        var seen = 0
        var writeError: Error?
        /// Blocks read and not yet given back, oldest first, with the packets taken from each.
        var held: [(block: Int, issued: Int)] = []
        while !isCancelled {
            if let count, seen >= count { break }
            let now = LiveStatus.seconds()
            if let deadline, now >= deadline { break }
            var issued = 0
            // Held blocks are a contiguous run ending just before the next block to read: with
            // all of them held, the next one is the oldest held, still ours — wait for releases.
            guard held.count < capture.blockCount else {
                releaseFinishedBlocks(&held, ring, capture)
                usleep(100)
                continue
            }
            let read = capture.readKeepingBlock(timeoutMilliseconds: 50) { record, inRing in
                if let count, seen >= count { return }
                seen += 1
                if let write, writeError == nil {
                    do {
                        try write.write(
                            record.bytes, originalLength: record.originalLength, timestamp: record.timestamp,
                            linkType: record.linkType)
                    } catch { writeError = error }
                }
                if inRing { issued += 1 }
                dispatch(record, file: 0, session: session, state: &state, inPlace: inRing ? ring : nil)
                if liveView != nil, let flow = state.summary.flow {
                    talkers.count(
                        flow, vlan: nil, wireLength: record.originalLength, timestamp: record.timestamp, tcpFlags: 0,
                        workstream: 0)
                }
            }
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
            if let read { held.append((read.block, issued)) }
            releaseFinishedBlocks(&held, ring, capture)
            status.frames.store(seen, ordering: .relaxed)
            status.update(capture.statistics())
            if let liveView, now >= nextView {
                nextView = now + liveView.interval
                let top = talkers.records.sorted { $0.bytes > $1.bytes }.prefix(5).map { $0 }
                liveView.report(
                    LiveView.Frame(
                        elapsed: now - started, frames: seen, kernel: status.kernel,
                        snapshot: session.engine.snapshot(),
                        topFlows: top))
            }
        }
        session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
        status.update(capture.statistics())
        var errors: [ReplayError] = []
        if let failure = writeError as? CaptureError { errors.append(ReplayError(file: "--write", error: failure)) }
        let result = session.finish(
            errors: errors, kernelDrops: Int(status.kernel.dropped), cancelled: cancelled.load(ordering: .relaxed))
        // The engine has stopped and drained: every packet is released; the blocks can go back.
        for entry in held { capture.release(block: entry.block) }
        return result
    }

    /// Gives back, oldest first, the held blocks whose packets have all been released.
    private func releaseFinishedBlocks(
        _ held: inout [(block: Int, issued: Int)], _ ring: ReleaseCounters, _ capture: LiveCapture
    ) {
        while let oldest = held.first, ring.released(oldest.block) == oldest.issued {
            ring.reset(oldest.block)
            capture.release(block: oldest.block)
            held.removeFirst()
        }
    }

    /// An engine with the replay's protocols registered and started, its accounts and its arena.
    private final class Session {
        let engine: NetISR
        let accounts: ReplayAccounts
        let arena: PacketArena
        let whenFull: QueueFullAction
        let workstreams: Int
        let started = ContinuousClock.now

        init(_ configuration: ReplayConfiguration, measureDelays: Bool = false) throws(NetISRError) {
            var engineConfiguration = NetISRConfiguration(workstreamCount: configuration.threads)
            engineConfiguration.dispatchPolicy = configuration.dispatch
            engineConfiguration.bindThreads = configuration.bindThreads
            engineConfiguration.pollMode = configuration.pollMode
            engine = try NetISR(configuration: engineConfiguration)
            let workstreams = engine.workstreamCount
            self.workstreams = workstreams
            accounts = ReplayAccounts(workstreams: workstreams, measureDelays: measureDelays)
            let ordering: OrderingPolicy =
                switch configuration.ordering {
                case "source": .source
                case "cpu":
                    .cpu({ packet in packet.flowID.map { .workstream(Int($0 % UInt32(workstreams))) } ?? .none })
                default: .flow()
                }
            whenFull = configuration.dropWhenFull ? .drop : .wait
            try ReplayRegistration.register(
                on: engine, accounts: accounts, ordering: ordering, queueLimit: configuration.queueLimit,
                whenFull: whenFull)
            arena = PacketArena(workstreams: workstreams)
            try engine.start()
        }

        func finish(errors: [ReplayError], kernelDrops: Int?, cancelled: Bool) -> ReplayResult {
            engine.stop(.drain)
            arena.drain()
            let elapsed = ContinuousClock.now - started
            return ReplayResult(
                accounts: accounts, snapshot: engine.snapshot(), errors: errors,
                elapsedNanoseconds: UInt64(elapsed.components.seconds) * 1_000_000_000
                    + UInt64(elapsed.components.attoseconds / 1_000_000_000),
                cancelled: cancelled, kernelDrops: kernelDrops)
        }
    }

    /// What the reader carries from file to file.
    private struct ReaderState: ~Copyable {
        let workstreams: Int
        let sourceIsFlow: Bool
        let hasher = ToeplitzHash()
        var summary = PacketSummary()
        var batch = PacketBatch(capacity: 64)
        var paceOrigin: (capture: UInt64, wall: UInt64)?

        init(workstreams: Int, sourceIsFlow: Bool) {
            self.workstreams = workstreams
            self.sourceIsFlow = sourceIsFlow
        }
    }

    private func replay(_ file: String, index: Int, session: Session, state: inout ReaderState) throws {
        let engine = session.engine
        let whenFull = session.whenFull
        let reader = try CaptureReader(path: file)
        var nextProgress = 64 << 20
        var failure: Error?
        while !isCancelled {
            let read: Int
            do {
                read = try reader.read(maximum: 256) { record in
                    if case .factor(let factor) = configuration.speed {
                        pace(record.timestamp, factor: factor, engine: engine, whenFull: whenFull, state: &state)
                    }
                    dispatch(record, file: index, session: session, state: &state)
                }
            } catch {
                failure = error
                break
            }
            if read == 0 { break }
            if reader.bytesRead >= nextProgress {
                configuration.progress?(index, reader.bytesRead, reader.size)
                nextProgress = reader.bytesRead + (64 << 20)
            }
        }
        engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: whenFull)
        configuration.progress?(index, reader.bytesRead, reader.size)
        if let failure { throw failure }
    }

    /// Computes a record's flow id (as an RSS NIC would), copies it into the arena and batches it
    /// for `ether`.
    @inline(__always)
    private func dispatch(
        _ record: CaptureRecord, file: Int, session: Session, state: inout ReaderState,
        inPlace ring: ReleaseCounters? = nil
    ) {
        let linkType = record.linkType
        var flowID: UInt32?
        if linkType.isSupported {
            PacketParser.parse(record.bytes, linkType: linkType, into: &state.summary)
            if let flow = state.summary.flow {
                flowID = state.hasher.symmetricHash(flow, includePorts: false)
            }
        }
        let source = ReplayProtocol.sourceID(linkType: linkType, file: file)
        let workstream =
            state.sourceIsFlow
            ? Int((flowID ?? source) % UInt32(state.workstreams)) : Int(source % UInt32(state.workstreams))
        let make = { (bytes: UnsafeRawBufferPointer, owner: PacketOwner) in
            Packet(
                bytes: bytes, wireLength: UInt32(clamping: record.originalLength), sourceID: source,
                flowID: flowID, timestamp: record.timestamp, owner: owner)
        }
        let packet: Packet
        if let ring {
            packet = ring.packet(record.bytes, releasedBy: workstream, make)
        } else {
            packet = session.arena.packet(record.bytes, releasedBy: workstream, make)
        }
        if let rejected = state.batch.append(packet) {
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
            _ = state.batch.append(rejected)
        }
        if state.batch.isFull {
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
        }
    }

    /// Sleeps until the packet's capture time, scaled, has come (flushing what is batched first).
    private func pace(
        _ timestamp: UInt64, factor: Double, engine: NetISR, whenFull: QueueFullAction, state: inout ReaderState
    ) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let wall = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        guard let origin = state.paceOrigin else {
            state.paceOrigin = (timestamp, wall)
            return
        }
        let offset = timestamp > origin.capture ? Double(timestamp - origin.capture) / max(factor, 1e-9) : 0
        let due = origin.wall + UInt64(offset)
        if due > wall + 50_000 {
            engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: whenFull)
            var pause = timespec(tv_sec: Int((due - wall) / 1_000_000_000), tv_nsec: Int((due - wall) % 1_000_000_000))
            var remaining = timespec()
            while nanosleep(&pause, &remaining) != 0 && !cancelled.load(ordering: .relaxed) { pause = remaining }
        }
    }
}

/// A file that could not be read to its end.
public struct ReplayError: Sendable, Error, CustomStringConvertible {
    /// The file.
    public var file: String
    /// What went wrong and where.
    public var error: CaptureError

    /// `file: message (at byte offset N)`.
    public var description: String { "\(file): \(error)" }
}
