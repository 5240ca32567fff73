// Replay: reads capture files through the engine into flow accounting.
//
// One reader thread (the caller's) plays the NIC and its driver: it reads records in bursts,
// parses each once to compute its flow id (the symmetric Toeplitz hash of the address pair, as
// an RSS NIC would; Ethernet + IPv4 or IPv6 frames, untagged or with one 802.1Q tag, most of any
// capture, are read at fixed offsets instead: IPv4, 1M packets, 790 → 720 ms CPU), and
// dispatches bursts to `ether` of packets over the bytes where they lie: the PacketArena maps the
// file's windows (or lends the reader buffers to read a compressed file or a pipe into).
// From there ReplayRegistration's protocols take over. Lossless by default (`whenFull: .wait`): a file can
// wait, so the result is the same for every thread count, dispatch policy and ordering policy.
// `--drop` switches to drop-tail to show what a live system would lose. Live capture, the same
// pipeline fed from a kernel ring, is in Replay+Live.swift.

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
    /// Queue limit per protocol and workstream; 0 takes the engine's default (256). 10,240 (the
    /// engine's maximum) by default: a reader hands over thousands of frames at a time (a read
    /// buffer, a ring block), and with short queues a lossless replay spends its time waiting for
    /// room (12% of a 1M-packet replay with 256). Deep queues also let the reader run ahead while
    /// the workers are slow — early in a capture, where most frames open new flows — and keep the
    /// second CPU busy later (1M packets, 100k flows: 254 → 222 ms wall, 410 → 360 ms CPU against
    /// 4,096, with the arena's chunks grown to match; BENCHMARKS.md, run 64).
    public var queueLimit = 10_240
    /// Bind workstreams to CPUs.
    public var bindThreads = false
    /// Workers poll instead of sleeping.
    public var pollMode = false
    /// Drop at full queues instead of waiting (what a live system would lose).
    public var dropWhenFull = false
    /// Pacing.
    public var speed: Speed = .maximum
    /// Called from the reader thread about every 64 MiB and at the end of each file:
    /// (file index, bytes of the file read, file size if known; of a compressed file, its
    /// compressed bytes).
    public var progress: (@Sendable (Int, Int, Int?) -> Void)?
    /// Polled after every burst: true stops the replay as `cancel()` does (for signal handlers).
    public var shouldStop: (@Sendable () -> Bool)?
    /// Keep only frames that match this capture filter (tcpdump's syntax, compiled by libpcap,
    /// which must be installed); the others are counted (`ReplayResult.filteredFrames`) and never
    /// offered to the engine. Files only: a live capture filters in the kernel.
    public var filter: String?
    /// When flow records end before the capture does (off by default: one record per flow).
    public var flowTimeouts = FlowTimeouts()
    /// The most rows each conversation table keeps, all workstreams together (a bound on memory for
    /// captures that run indefinitely); frames of conversations beyond it are counted
    /// (`ReplayResult.untrackedConversationFrames`), not tabled. Unlimited by default.
    public var maximumConversations = Int.max
    /// Count frames and bytes per interval of this many seconds of capture time
    /// (`ReplayResult.ioStatistics`, tshark's `-z io,stat`); files only.
    public var ioInterval: Double?
    /// The packet arena's chunks (PacketArena); tests use fewer, to reach its ends with less data.
    var arenaChunks = PacketArena.defaultChunks

    /// Creates the default configuration.
    public init() {}
}

/// Runs replays; `cancel()` from another thread (a signal handler's watcher) stops one cleanly.
public final class Replay: Sendable {
    let configuration: ReplayConfiguration
    let cancelled = Atomic<Bool>(false)

    /// Prepares a replay.
    public init(_ configuration: ReplayConfiguration = ReplayConfiguration()) {
        self.configuration = configuration
    }

    /// Asks a running replay to stop after its current burst; the result covers what was read.
    public func cancel() { cancelled.store(true, ordering: .relaxed) }

    var isCancelled: Bool {
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
        var state = ReaderState(map: session.engine.workstreamMap, sourceIsFlow: configuration.ordering != "source")
        state.filter = configuration.filter.map(ReplayFilter.init)
        state.io = configuration.ioInterval.map(IOStatistics.init(interval:))
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
        return session.finish(
            errors: errors, kernelDrops: nil, cancelled: cancelled.load(ordering: .relaxed), filter: state.filter,
            ioStatistics: state.io, droppedWhileCapturing: state.droppedWhileCapturing)
    }

    /// An engine with the replay's protocols registered and started, its accounts and its arena.
    ///
    /// Unchecked Sendable: immutable after init; its parts synchronize themselves.
    final class Session: @unchecked Sendable {
        let engine: NetISR
        let accounts: ReplayAccounts
        let arena: PacketArena
        let whenFull: QueueFullAction
        let workstreams: Int
        /// Fanout mode: reader N feeds workstream N (its packets carry N as their file index).
        let readerOrdered: Bool
        /// Network-layer frames go to workstreams by their flow's address hash (flow or cpu ordering).
        let placedByAddresses: Bool
        let started = ContinuousClock.now
        /// Exports flow records as they end (live captures only).
        let flowExport: LiveFlowExport?
        /// Whether the ip handlers run in the reader threads (direct dispatch): flow tables are
        /// then swept there, not on the workers.
        let sweepsInReaders: Bool

        init(_ configuration: ReplayConfiguration, measureDelays: Bool = false, flowExport: LiveFlowExport? = nil)
            throws(NetISRError)
        {
            var engineConfiguration = NetISRConfiguration(workstreamCount: configuration.threads)
            engineConfiguration.dispatchPolicy = configuration.dispatch
            // Handler calls of up to 128 packets, not the engine's 32: the accounting pipeline
            // fills and drains once per call, so its misses overlap across four times as many
            // frames (1M packets, 100k flows: 282 → 250 ms wall, 460 → 420 ms CPU, 21 interleaved
            // rounds; 96 and 192 were no better).
            engineConfiguration.burstSize = 128
            // Idle workers spin 128 polls, not the engine's 2,000, before they sleep: with the
            // reader and the workers sharing the CPUs, a worker spinning for packets holds a CPU
            // the reader or the other worker could use (1M packets: 256 → 233 ms wall, 420 → 380
            // ms CPU, 21 interleaved rounds; 64 and 256 polls in between, none at all worse).
            engineConfiguration.idleSpins = 128
            engineConfiguration.bindThreads = configuration.bindThreads
            engineConfiguration.pollMode = configuration.pollMode
            engine = try NetISR(configuration: engineConfiguration)
            let workstreams = engine.workstreamCount
            self.workstreams = workstreams
            let perWorkstream =
                configuration.maximumConversations == .max
                ? .max : (max(configuration.maximumConversations, 0) + workstreams - 1) / workstreams
            accounts = ReplayAccounts(
                workstreams: workstreams, measureDelays: measureDelays, flowTimeouts: configuration.flowTimeouts,
                maximumConversations: perWorkstream, defersConversationRows: flowExport == nil && !measureDelays)
            readerOrdered = configuration.ordering == "reader"
            placedByAddresses = configuration.ordering != "reader" && configuration.ordering != "source"
            let ordering: OrderingPolicy =
                switch configuration.ordering {
                case "source": .source
                case "reader": .cpu({ packet in .workstream(Int(packet.sourceID >> 16)) })
                case "cpu":
                    .cpu({ [map = engine.workstreamMap] packet in
                        packet.flowID.map { .workstream(map.workstream(forFlowID: $0)) } ?? .none
                    })
                default: .flow()
                }
            whenFull = configuration.dropWhenFull ? .drop : .wait
            self.flowExport = flowExport
            sweepsInReaders = configuration.dispatch == .direct
            try ReplayRegistration.register(
                on: engine, accounts: accounts, ordering: ordering, etherOrdering: readerOrdered ? ordering : .source,
                queueLimit: configuration.queueLimit, whenFull: whenFull, flowExport: flowExport)
            arena = PacketArena(chunks: configuration.arenaChunks, workstreams: workstreams)
            try engine.start()
        }

        func finish(
            errors: [ReplayError], kernelDrops: Int?, cancelled: Bool, filter: ReplayFilter? = nil,
            ioStatistics: IOStatistics? = nil, droppedWhileCapturing: Int? = nil
        ) -> ReplayResult {
            engine.stop(.drain)
            arena.drain()
            let elapsed = ContinuousClock.now - started
            return ReplayResult(
                accounts: accounts, placedByAddresses: placedByAddresses, snapshot: engine.snapshot(), errors: errors,
                elapsedNanoseconds: UInt64(elapsed.components.seconds) * 1_000_000_000
                    + UInt64(elapsed.components.attoseconds / 1_000_000_000),
                cancelled: cancelled, kernelDrops: kernelDrops, filter: filter,
                flowsExported: flowExport.map { $0.sendsRecords ? $0.sweptCount : 0 } ?? 0,
                flowsDiscarded: flowExport.map { $0.sendsRecords ? 0 : $0.sweptCount } ?? 0, ioStatistics: ioStatistics,
                droppedWhileCapturing: droppedWhileCapturing)
        }
    }

    /// What the reader carries from file to file.
    struct ReaderState: ~Copyable {
        /// Where the engine places the frames (the arena is told which workstream releases each).
        let map: WorkstreamMap
        let sourceIsFlow: Bool
        let hasher = ToeplitzHash()
        var summary = PacketSummary()
        var batch = PacketBatch(capacity: 64)
        var paceOrigin: (capture: UInt64, wall: UInt64)?
        /// In fanout mode, the workstream this reader serves.
        var fixedWorkstream: Int?
        /// The arena chunk of the arena-held packets in `batch` (see `dispatch`).
        var batchChunk = -1
        /// Whether `summary` must hold the whole parse (a live view's rates and top flows read it);
        /// otherwise the reader parses only the addresses it hashes, as an RSS NIC does.
        var parsesFully = false
        /// The read filter, if any.
        var filter: ReplayFilter?
        /// Frames and bytes per interval, if asked.
        var io: IOStatistics?
        /// What the files' pcapng statistics say their capturing tools dropped (nil: nothing said).
        var droppedWhileCapturing: Int?

        init(map: WorkstreamMap, sourceIsFlow: Bool) {
            self.map = map
            self.sourceIsFlow = sourceIsFlow
        }
    }

    func replay(_ file: String, index: Int, session: Session, state: inout ReaderState) throws {
        let engine = session.engine
        let whenFull = session.whenFull
        let reader = try CaptureReader(path: file, buffers: session.arena)
        var nextProgress = 64 << 20
        var failure: Error?
        while !isCancelled {
            let read: Int
            do {
                read = try reader.read(maximum: 256) { record in
                    if state.filter?.keeps(record) == false {
                        // Skipped records move the reader through the arena's chunks too.
                        enterChunk(session.arena.chunk(of: record.bytes), session: session, state: &state)
                        return
                    }
                    state.io?.count(timestamp: record.timestamp, wireLength: record.originalLength)
                    if case .factor(let factor) = configuration.speed {
                        pace(record.timestamp, factor: factor, engine: engine, whenFull: whenFull, state: &state)
                    }
                    dispatch(record, file: index, session: session, state: &state, storage: .lent(session.arena))
                }
            } catch {
                failure = error
                break
            }
            if read == 0 { break }
            let progress = reader.fileProgress
            if progress.read >= nextProgress {
                configuration.progress?(index, progress.read, progress.total)
                nextProgress = progress.read + (64 << 20)
            }
        }
        engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: whenFull)
        if let dropped = reader.droppedWhileCapturing {
            state.droppedWhileCapturing = (state.droppedWhileCapturing ?? 0) &+ Int(clamping: dropped)
        }
        let progress = reader.fileProgress
        configuration.progress?(index, progress.read, progress.total)
        if let failure { throw failure }
        if let failure = state.filter?.takeFailure() { throw failure }
    }

    /// Where a frame's bytes stay while the engine holds its packet.
    enum FrameStorage {
        /// In a window of the file the arena mapped, or a buffer it lent the capture reader (a file
        /// replay: no copy).
        case lent(PacketArena)
        /// Copied into an arena (frames of a capture ring that cannot be handed on).
        case copied(PacketArena)
        /// In place in a capture ring's block, released through these counters.
        case ringBlock(ReleaseCounters)
    }

    /// Computes a record's flow id (as an RSS NIC would), makes it a packet whose bytes stay in
    /// `storage` and batches it for `ether`; returns the workstream its network layer will run on.
    @inline(__always)
    @discardableResult
    func dispatch(
        _ record: CaptureRecord, file: Int, session: Session, state: inout ReaderState, storage: FrameStorage
    ) -> Int {
        let linkType = record.linkType
        var flowID: UInt32?
        var packetType: UInt8 = 0
        if linkType == .ethernet && !state.parsesFully, let placed = placeAtFixedOffsets(record.bytes, state.hasher) {
            (flowID, packetType) = (placed.flowID, placed.packetType)
        } else if linkType.isSupported {
            if state.parsesFully {
                PacketParser.parse(record.bytes, linkType: linkType, into: &state.summary)
            } else {
                PacketParser.parseFlowAddresses(record.bytes, linkType: linkType, into: &state.summary)
            }
            if let flow = state.summary.flow {
                flowID = state.hasher.symmetricHash(flow, includePorts: false)
            }
            packetType = ReplayProtocol.packetType(state.summary.network)
        }
        let source = ReplayProtocol.sourceID(linkType: linkType, file: file)
        let placingFlowID = state.sourceIsFlow ? flowID : nil
        let workstream =
            state.fixedWorkstream ?? placingFlowID.map(state.map.workstream(forFlowID:))
            ?? state.map.workstream(forSourceID: source)
        let make = { (bytes: UnsafeRawBufferPointer, owner: PacketOwner) in
            Packet(
                bytes: bytes, wireLength: UInt32(clamping: record.originalLength), sourceID: source,
                flowID: flowID, timestamp: record.timestamp, packetType: packetType, owner: owner)
        }
        let packet: Packet
        var chunk: Int?
        switch storage {
        case .lent(let arena):
            packet = arena.packet(lent: record.bytes, releasedBy: workstream, make)
            chunk = arena.chunk(of: packet.bytes)
        case .copied(let arena):
            packet = arena.packet(copying: record.bytes, releasedBy: workstream, make)
            chunk = arena.chunk(of: packet.bytes)
        case .ringBlock(let ring):
            packet = ring.packet(record.bytes, releasedBy: workstream, make)
        }
        if let chunk { enterChunk(chunk, session: session, state: &state) }
        if let rejected = state.batch.append(packet) {
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
            _ = state.batch.append(rejected)
        }
        if state.batch.isFull {
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
        }
        return workstream
    }

    /// Dispatches the batch if its packets are in another arena chunk than `chunk`, the one the
    /// reader is now in. The batch holds packets of one chunk at a time: the arena reuses a chunk
    /// only once all its packets are released, and waits for that; were packets of an older chunk
    /// still in this batch, the reader would wait for itself (large records fill chunks fast, and
    /// a read filter may skip whole chunks).
    @inline(__always)
    private func enterChunk(_ chunk: Int, session: Session, state: inout ReaderState) {
        guard chunk != state.batchChunk else { return }
        if !state.batch.isEmpty {
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
        }
        state.batchChunk = chunk
    }

    /// The flow id and packet type of an Ethernet frame (untagged or with one 802.1Q tag) carrying
    /// IPv4 or IPv6, from the addresses at fixed offsets (what `parseFlowAddresses` would find,
    /// without the walk); nil otherwise.
    @inline(__always)
    private func placeAtFixedOffsets(_ bytes: UnsafeRawBufferPointer, _ hasher: ToeplitzHash)
        -> (flowID: UInt32, packetType: UInt8)?
    {
        if let addresses = PacketParser.ethernetIPv4Addresses(bytes) {
            return (
                hasher.symmetricHash(ipv4: addresses.source, addresses.destination), ReplayProtocol.packetType(.ipv4)
            )
        }
        if let addresses = PacketParser.ethernetIPv6Addresses(bytes) {
            return (
                hasher.symmetricHash(ipv6: addresses.source, addresses.destination), ReplayProtocol.packetType(.ipv6)
            )
        }
        return nil
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
