// Replay+Live: the replay's pipeline fed from a Linux interface instead of files.
//
// One reader thread per socket (one, or one per workstream with PACKET_FANOUT) reads ring blocks
// and dispatches their frames in place: a packet points into the ring, and a block goes back to
// the kernel, oldest first, once every packet taken from it has been released (ReleaseCounters).
// Reader N owns its capture, ring counters and held blocks; the shared LiveStatus counters are
// atomics; the live view runs on the first reader.

import NetISR
import PacketWire

#if canImport(Glibc)
    import Glibc
#endif

extension Replay {
    /// Captures from a live interface until `duration` seconds have passed, `count` frames were
    /// read, or the replay is cancelled (Ctrl-C); same protocols, accounting and report as for
    /// files, plus the kernel's drop count. Zero-copy: packets point into the ring, and a block
    /// goes back to the kernel only when every packet taken from it has been handled or dropped
    /// (frames rebuilt with their VLAN tag are copied to the arena instead).
    ///
    /// - Parameters:
    ///   - interface: the interface to capture on (`eth0`, `lo`).
    ///   - options: the ring's size, promiscuous mode, the kernel filter.
    ///   - duration: stop after this many seconds.
    ///   - count: stop after this many frames.
    ///   - write: also write every frame captured here.
    ///   - fanout: one socket and reader thread per workstream in a PACKET_FANOUT hash group, each
    ///     reader running its workstream's handlers directly; otherwise one reader dispatching to
    ///     the workstreams by flow (the default).
    ///   - metrics: serve Prometheus metrics (engine counters, drops, kernel counters, queueing
    ///     delay per protocol) on this address while capturing.
    ///   - liveView: called from the (first) reader thread every `interval` seconds.
    ///   - flowExport: export flow records as the configuration's `flowTimeouts` end them, every
    ///     `flowExport.interval` seconds, instead of leaving them in the result (the result then
    ///     holds the records still open, and counts the others in `flowsExportedDuringCapture`),
    ///     and keep the flow tables within `flowExport.maximumFlows`. An export with neither a
    ///     collector nor a file only bounds the tables (`flowsDiscardedDuringCapture`). Without
    ///     one, every record stays in the tables until the capture stops.
    ///   - ready: called once the sockets receive, with their number and link type, before the
    ///     first read.
    public func run(
        interface: String, options: LiveCaptureOptions = LiveCaptureOptions(), duration: Double? = nil,
        count: Int? = nil, write: CaptureWriter? = nil, fanout: Bool = false,
        metrics: (host: String, port: UInt16)? = nil, liveView: LiveView? = nil, flowExport: LiveFlowExport? = nil,
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
        let session = try Session(sessionConfiguration, measureDelays: true, flowExport: flowExport)
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
        let exportThread = session.flowExport?.start()
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
        // The engine has stopped: no sweep runs any more; what the last ones ended goes out now.
        if let exportThread { session.flowExport?.stop(exportThread) }
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
        var state = ReaderState(map: session.engine.workstreamMap, sourceIsFlow: configuration.ordering != "source")
        if session.readerOrdered { state.fixedWorkstream = reader }
        state.parsesFully = liveView != nil
        // Frames rebuilt with their VLAN tag are copied; each reader needs its own arena for them.
        let arena = reader == 0 ? session.arena : PacketArena(chunks: 2, workstreams: session.workstreams)
        defer { if reader != 0 { arena.drain() } }
        var nextView = limits.started + (liveView?.interval ?? .infinity)
        var nextSweep = limits.started + (session.flowExport?.sweepInterval ?? .infinity)
        var talkers = FlowTable()
        /// For the live view: wire bytes per workstream × protocol since the last block.
        var protocolBytes = [Int](
            repeating: 0, count: countRates ? session.workstreams * LiveStatus.protocols.count : 0)
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
                    record, file: reader, session: session, state: &state,
                    storage: inRing ? .ringBlock(ring) : .copied(arena))
                if countRates, let index = LiveStatus.protocolIndex(state.summary.network) {
                    protocolBytes[workstream * LiveStatus.protocols.count + index] += record.originalLength
                }
                if liveView != nil, let flow = state.summary.flow {
                    talkers.count(
                        flow, vlan: nil, hash: FlowTable.hash(flow, vlan: nil), wireLength: record.originalLength,
                        timestamp: record.timestamp, tcpFlags: 0, workstream: 0)
                }
            }
            session.engine.dispatch(ReplayProtocol.ether, batch: &state.batch, whenFull: session.whenFull)
            if let read { held.append((read.block, issued)) }
            if limits.count == nil { status.frames.wrappingAdd(frames, ordering: .relaxed) }
            status.wireBytes.wrappingAdd(bytes, ordering: .relaxed)
            if countRates { status.addProtocolBytes(&protocolBytes) }
            releaseFinishedBlocks(&held, ring, capture)
            status.update(reader, capture.statistics())
            if let flowExport = session.flowExport, now >= nextSweep {
                nextSweep = now + flowExport.sweepInterval
                sweepFlows(flowExport, reader: reader, session: session)
            }
            if let liveView, now >= nextView {
                nextView = now + liveView.interval
                // The interval's flows, then a fresh table: a busy link's table neither grows
                // without end nor gets sorted whole on the reader thread.
                let top = talkers.largest(5)
                talkers = FlowTable()
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

    /// Has the flow tables swept on the threads that own them: a fanout reader sweeps its own
    /// workstream's, the single reader every workstream's — itself when the handlers run in it
    /// (direct dispatch), otherwise by scheduling each worker's sweep protocol.
    private func sweepFlows(_ export: LiveFlowExport, reader: Int, session: Session) {
        if session.readerOrdered {
            export.sweep(session.accounts.workstreams + reader, workstreams: session.workstreams)
            return
        }
        guard reader == 0 else { return }
        for workstream in 0..<session.workstreams {
            if session.sweepsInReaders {
                export.sweep(session.accounts.workstreams + workstream, workstreams: session.workstreams)
            } else {
                session.engine.schedule(ReplayProtocol.flowSweep, workstream: workstream)
            }
        }
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
}
