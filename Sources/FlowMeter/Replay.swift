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
    /// Queue limit per protocol and workstream; 0 takes the engine's default (256). 4096 by
    /// default: a reader hands over thousands of frames at a time (a read buffer, a ring block), and
    /// with short queues a lossless replay spends its time waiting for room (12% of a 1M-packet
    /// replay here).
    public var queueLimit = 4_096
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
    ///   - fanout: one socket and reader thread per workstream in a PACKET_FANOUT hash group, each
    ///     reader running its workstream's handlers directly; otherwise one reader dispatching to
    ///     the workstreams by flow (the default).
    ///   - metrics: serve Prometheus metrics (engine counters, drops, kernel counters, queueing
    ///     delay per protocol) on this address while capturing.
    ///   - liveView: called from the (first) reader thread every `interval` seconds.
    ///   - ready: called once the sockets receive, with their number and link type, before the
    ///     first read.
    public func run(
        interface: String, options: LiveCaptureOptions = LiveCaptureOptions(), duration: Double? = nil,
        count: Int? = nil, write: CaptureWriter? = nil, fanout: Bool = false,
        metrics: (host: String, port: UInt16)? = nil, liveView: LiveView? = nil,
        ready: ((_ sockets: Int, _ linkType: LinkType) -> Void)? = nil
    ) throws -> ReplayResult {
        if fanout && write != nil {
            throw CaptureError(.io, at: 0, "--write needs the single-reader mode (one writer), not --fanout")
        }
        var sessionConfiguration = configuration
        if fanout {
            sessionConfiguration.ordering = "reader"
            sessionConfiguration.dispatch = .direct
        }
        let session = try Session(sessionConfiguration, measureDelays: true)
        let captures =
            fanout
            ? try LiveCapture.fanout(interface: interface, options: options, sockets: session.workstreams)
            : [try LiveCapture(interface: interface, options: options)]
        ready?(captures.count, captures[0].linkType)
        let rings = captures.map {
            ReleaseCounters(
                workstreams: session.workstreams, regions: $0.blockCount, regionSize: $0.blockSize, base: $0.ringBase)
        }
        // Packets point into the captures' mappings and count through `rings`: both must outlive them.
        return try withExtendedLifetime((captures, rings)) {
            try live(
                captures, rings, session, duration: duration, count: count, write: write, metrics: metrics,
                liveView: liveView)
        }
    }

    private func live(
        _ captures: [LiveCapture], _ rings: [ReleaseCounters], _ session: Session, duration: Double?, count: Int?,
        write: CaptureWriter?, metrics: (host: String, port: UInt16)?, liveView: LiveView?
    ) throws -> ReplayResult {
        let status = LiveStatus(readers: captures.count, workstreams: session.workstreams)
        let server = try metrics.map { endpoint in
            try MetricsServer(host: endpoint.host, port: endpoint.port) {
                [engine = session.engine, accounts = session.accounts] in
                PrometheusExposition.render(
                    engine.snapshot(), kernel: status.kernel, delays: accounts.delays?.snapshot() ?? [],
                    frames: status.frames.load(ordering: .relaxed))
            }
        }
        defer { server?.stop() }
        let started = LiveStatus.seconds()
        let limits = LiveLimits(deadline: duration.map { started + $0 }, count: count, started: started)
        /// The blocks one reader still holds when it stops.
        ///
        /// Unchecked Sendable: written by its reader thread before the join, read after it.
        final class HeldBlocks: @unchecked Sendable {
            var blocks: [(block: Int, issued: Int)] = []
        }
        let held = captures.map { _ in HeldBlocks() }
        let helpers = (1..<captures.count).map { reader in
            ThreadHandle { [self] in
                held[reader].blocks = readLoop(
                    reader, captures[reader], rings[reader], session, limits, status, write: nil, liveView: nil,
                    countRates: liveView != nil, writeError: nil)
            }
        }
        var writeError: Error?
        held[0].blocks = readLoop(
            0, captures[0], rings[0], session, limits, status, write: write, liveView: liveView,
            countRates: liveView != nil, writeError: &writeError)
        for helper in helpers { helper.join() }
        for (reader, capture) in captures.enumerated() { status.update(reader, capture.statistics()) }
        var errors: [ReplayError] = []
        if let failure = writeError as? CaptureError { errors.append(ReplayError(file: "--write", error: failure)) }
        let result = session.finish(
            errors: errors, kernelDrops: Int(status.kernel.dropped), cancelled: cancelled.load(ordering: .relaxed))
        // The engine has stopped and drained: every packet is released; the blocks can go back.
        for (reader, capture) in captures.enumerated() {
            for entry in held[reader].blocks { capture.release(block: entry.block) }
        }
        return result
    }

    /// One reader thread's loop; returns the blocks it still holds. `liveView` runs on the first
    /// reader only (its top flows are that reader's); with `countRates` every reader counts the
    /// bytes per workstream and protocol the view shows.
    private func readLoop(
        _ reader: Int, _ capture: LiveCapture, _ ring: ReleaseCounters, _ session: Session, _ limits: LiveLimits,
        _ status: LiveStatus, write: CaptureWriter?, liveView: LiveView?, countRates: Bool,
        writeError: UnsafeMutablePointer<Error?>?
    ) -> [(block: Int, issued: Int)] {
        var state = ReaderState(workstreams: session.workstreams, sourceIsFlow: configuration.ordering != "source")
        if session.readerOrdered { state.fixedWorkstream = reader }
        // Frames rebuilt with their VLAN tag are copied; each reader needs its own arena for them.
        let arena = reader == 0 ? session.arena : PacketArena(chunks: 2, workstreams: session.workstreams)
        defer { if reader != 0 { arena.drain() } }
        var nextView = limits.started + (liveView?.interval ?? .infinity)
        var talkers = FlowTable()
        /// For the live view: wire bytes per workstream × protocol since the last block.
        var protocolBytes = [Int](repeating: 0, count: countRates ? session.workstreams * 3 : 0)
        /// Blocks read and not yet given back, oldest first, with the packets taken from each.
        var held: [(block: Int, issued: Int)] = []
        while !isCancelled {
            if let count = limits.count, status.frames.load(ordering: .relaxed) >= count { break }
            let now = LiveStatus.seconds()
            if let deadline = limits.deadline, now >= deadline { break }
            // Held blocks are a contiguous run ending just before the next block to read: with
            // all of them held, the next one is the oldest held, still ours — wait for releases.
            guard held.count < capture.blockCount else {
                releaseFinishedBlocks(&held, ring, capture)
                usleep(100)
                continue
            }
            var issued = 0
            // Without a count limit, the shared counters are added to once per block.
            var frames = 0
            var bytes = 0
            let read = capture.readKeepingBlock(timeoutMilliseconds: 50) { record, inRing in
                if let count = limits.count,
                    status.frames.wrappingAdd(1, ordering: .relaxed).newValue > count
                {
                    return
                }
                frames += 1
                bytes += record.originalLength
                if let write, writeError?.pointee == nil {
                    do {
                        try write.write(
                            record.bytes, originalLength: record.originalLength, timestamp: record.timestamp,
                            linkType: record.linkType)
                    } catch { writeError?.pointee = error }
                }
                if inRing { issued += 1 }
                let workstream = dispatch(
                    record, file: reader, session: session, state: &state, inPlace: inRing ? ring : nil, arena: arena)
                if countRates, let index = LiveStatus.protocolIndex(state.summary.network) {
                    protocolBytes[workstream * 3 + index] += record.originalLength
                }
                if liveView != nil, let flow = state.summary.flow {
                    talkers.count(
                        flow, vlan: nil, wireLength: record.originalLength, timestamp: record.timestamp, tcpFlags: 0,
                        workstream: 0)
                }
            }
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
            if let read { held.append((read.block, issued)) }
            if limits.count == nil { status.frames.wrappingAdd(frames, ordering: .relaxed) }
            status.wireBytes.wrappingAdd(bytes, ordering: .relaxed)
            if countRates { status.addProtocolBytes(&protocolBytes) }
            releaseFinishedBlocks(&held, ring, capture)
            status.update(reader, capture.statistics())
            if let liveView, now >= nextView {
                nextView = now + liveView.interval
                let top = talkers.records.sorted { $0.bytes > $1.bytes }.prefix(5).map { $0 }
                liveView.report(
                    LiveView.Frame(
                        elapsed: now - limits.started,
                        frames: min(status.frames.load(ordering: .relaxed), limits.count ?? .max),
                        wireBytes: status.wireBytes.load(ordering: .relaxed), protocolBytes: status.bytesByProtocol,
                        kernel: status.kernel,
                        snapshot: session.engine.snapshot(), topFlows: top))
            }
        }
        session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
        return held
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
    ///
    /// Unchecked Sendable: immutable after init; its parts synchronize themselves.
    private final class Session: @unchecked Sendable {
        let engine: NetISR
        let accounts: ReplayAccounts
        let arena: PacketArena
        let whenFull: QueueFullAction
        let workstreams: Int
        /// Fanout mode: reader N feeds workstream N (its packets carry N as their file index).
        let readerOrdered: Bool
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
            readerOrdered = configuration.ordering == "reader"
            let ordering: OrderingPolicy =
                switch configuration.ordering {
                case "source": .source
                case "reader": .cpu({ packet in .workstream(Int(packet.sourceID >> 16)) })
                case "cpu":
                    .cpu({ packet in packet.flowID.map { .workstream(Int($0 % UInt32(workstreams))) } ?? .none })
                default: .flow()
                }
            whenFull = configuration.dropWhenFull ? .drop : .wait
            try ReplayRegistration.register(
                on: engine, accounts: accounts, ordering: ordering, etherOrdering: readerOrdered ? ordering : .source,
                queueLimit: configuration.queueLimit, whenFull: whenFull)
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
        /// In fanout mode, the workstream this reader serves.
        var fixedWorkstream: Int?

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
    /// for `ether`; returns the workstream its network layer will run on.
    @inline(__always)
    @discardableResult
    private func dispatch(
        _ record: CaptureRecord, file: Int, session: Session, state: inout ReaderState,
        inPlace ring: ReleaseCounters? = nil, arena: PacketArena? = nil
    ) -> Int {
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
            state.fixedWorkstream
            ?? (state.sourceIsFlow
                ? Int((flowID ?? source) % UInt32(state.workstreams)) : Int(source % UInt32(state.workstreams)))
        let make = { (bytes: UnsafeRawBufferPointer, owner: PacketOwner) in
            Packet(
                bytes: bytes, wireLength: UInt32(clamping: record.originalLength), sourceID: source,
                flowID: flowID, timestamp: record.timestamp, owner: owner)
        }
        let packet: Packet
        if let ring {
            packet = ring.packet(record.bytes, releasedBy: workstream, make)
        } else {
            packet = (arena ?? session.arena).packet(record.bytes, releasedBy: workstream, make)
        }
        if let rejected = state.batch.append(packet) {
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
            _ = state.batch.append(rejected)
        }
        if state.batch.isFull {
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
        }
        return workstream
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
