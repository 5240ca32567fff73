// PacketArena: where the replay keeps packet bytes while the engine holds the packets.
//
// The reader copies each record into the current chunk (1 MiB) of a fixed ring of chunks and
// hands the engine a packet over those bytes. A chunk is reused only when every packet issued
// from it has been released. Releases are counted per (workstream, chunk) through one
// PacketOwner per workstream, so each worker counts on its own cache lines (a drop released by
// the reader thread is the only cross-thread write, hence the atomic add). The reader waits
// (yields) when the ring is full: memory is bounded by chunks × chunk size whatever the file.

import NetISR
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

final class PacketArena: @unchecked Sendable {  // unchecked: chunk memory is handed out as described above
    static let chunkSize = 1 << 20

    let chunkCount: Int
    private let memory: UnsafeMutableRawPointer
    /// Packets issued from each chunk (reader only).
    private var issued: [Int]
    private var current = 0
    private var used = 0
    let owners: [ArenaOwner]
    /// The owners again, handed out without reference counting (see NetISR's UnretainedArray).
    private let unretainedOwners: [Unmanaged<ArenaOwner>]

    init(chunks: Int = 8, workstreams: Int) {
        chunkCount = chunks
        memory = .allocate(byteCount: chunks * Self.chunkSize, alignment: 64)
        issued = Array(repeating: 0, count: chunks)
        owners = (0..<workstreams).map { _ in ArenaOwner(chunks: chunks) }
        unretainedOwners = owners.map { Unmanaged.passUnretained($0) }
        for owner in owners { owner.arenaBase = UnsafeRawPointer(memory) }
    }

    deinit { memory.deallocate() }

    /// Copies `bytes` into the arena for a packet that workstream `workstream` will release, and
    /// makes the packet with `make`. Waits while the ring is full.
    @inline(__always)
    func packet(
        _ bytes: UnsafeRawBufferPointer, releasedBy workstream: Int,
        _ make: (UnsafeRawBufferPointer, PacketOwner) -> Packet
    ) -> Packet {
        let copy = copy(bytes)
        var made: Packet?
        unretainedOwners[workstream]._withUnsafeGuaranteedRef { made = make(copy, $0) }
        return made.take()!
    }

    private func copy(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let count = min(bytes.count, Self.chunkSize)
        if used + count > Self.chunkSize {
            current = (current + 1) % chunkCount
            used = 0
            waitUntilFree(current)
        }
        let destination = memory + current * Self.chunkSize + used
        if count > 0 { destination.copyMemory(from: bytes.baseAddress!, byteCount: count) }
        used += (count + 15) & ~15
        issued[current] += 1
        return UnsafeRawBufferPointer(start: destination, count: count)
    }

    private func released(_ chunk: Int) -> Int {
        owners.reduce(0) { $0 + $1.released(chunk) }
    }

    private func waitUntilFree(_ chunk: Int) {
        var spins = 0
        while released(chunk) != issued[chunk] {
            spins += 1
            if spins < 1_000 { sched_yield() } else { usleep(50) }
        }
        for owner in owners { owner.reset(chunk) }
        issued[chunk] = 0
    }

    /// Waits until every packet is released (at the end of a replay).
    func drain() {
        for chunk in 0..<chunkCount where issued[chunk] > 0 { waitUntilFree(chunk) }
    }
}

/// Counts releases per chunk for one workstream.
/// (`@unchecked Sendable`: the counters are atomics and `arenaBase` is set once, before use.)
final class ArenaOwner: PacketOwner, @unchecked Sendable {
    private let counts: UnsafeMutablePointer<Atomic<Int>>
    private let chunks: Int
    var arenaBase: UnsafeRawPointer?

    init(chunks: Int) {
        self.chunks = chunks
        counts = .allocate(capacity: chunks)
        for index in 0..<chunks { (counts + index).initialize(to: Atomic(0)) }
    }

    deinit {
        counts.deinitialize(count: chunks)
        counts.deallocate()
    }

    override func release(_ bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress, let arenaBase else { return }
        let chunk = (start - arenaBase) / PacketArena.chunkSize
        counts[chunk].wrappingAdd(1, ordering: .releasing)
    }

    func released(_ chunk: Int) -> Int { counts[chunk].load(ordering: .acquiring) }

    func reset(_ chunk: Int) { counts[chunk].store(0, ordering: .relaxed) }
}
