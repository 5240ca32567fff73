// PacketArena: where the replay keeps packet bytes while the engine holds the packets.
//
// A fixed ring of chunks (8 MiB each) in one mapping of the arena's own, aligned to 2 MiB.
// Replaying a regular file, the arena maps the file's bytes window by window over its chunks
// (read-only, populated at once) and packets point at the records where they lie: no copy. A
// window sits in its chunk at its file offset's place within a 2 MiB block (a window from offset
// 2 MiB + 12 KiB starts 12 KiB into the chunk) and runs to the chunk's end: the file's 2 MiB
// blocks inside it lie at 2 MiB-aligned addresses, so where the page cache holds them as huge
// pages (a file written in 2 MiB blocks, as `CaptureWriter` writes; or read first through such a
// mapping, which asks for them) each maps with one page-table entry instead of 512. Other files
// (gzip, pipes) are read into the chunks the arena lends (CaptureBufferProvider); a live
// capture's frames that cannot stay in the kernel's ring are copied into the current chunk (one
// arena serves one of these uses at a time). A chunk is reused only when every packet issued from
// it has been released. Releases are counted per (workstream, chunk) through one PacketOwner per
// workstream, so each worker counts on its own cache lines (a drop released by the reader thread
// is the only cross-thread write, hence the atomic add). The reader waits (yields) when the ring
// is full: memory is bounded by chunks × chunk size whatever the file. The arena's mapping is
// guarded (CNetISRShim's mapping_guard.c): a mapped file cut short by another program reads as
// damage, never as SIGBUS. Only the reader thread maps, lends and copies; workers only release.

import CNetISRShim
import NetISR
import PacketWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

final class PacketArena: @unchecked Sendable {  // unchecked: chunk memory is handed out as described above
    /// Chunks of 8 MiB: a mapped window holds at least three whole 2 MiB blocks of its file (see
    /// the top of this file), and a chunk holds any record twice over
    /// (`CaptureReader.minimumBufferSize`). The arena bounds, with the engine's queues, how far
    /// the reader runs ahead of the workers, and each chunk the reader moves to costs a wait for
    /// its last packets and a window unmapped (a TLB-flush interrupt to the workers' CPU) and
    /// mapped again. With the replay's 10,240-frame queues, a 1M-packet replay took 222 ms wall
    /// with four chunks of 8 MiB, 238 ms with eight of 4 MiB (the same 32 MiB) and 243 ms with
    /// four of 4 MiB (BENCHMARKS.md, run 64).
    static let chunkSize = 1 << chunkShift
    /// log2 of `chunkSize`: a packet's chunk is its offset shifted by it (offsets are never
    /// negative, so the shift needs none of a signed division's corrections).
    static let chunkShift = 23

    /// The chunks of an arena made without a count: 32 MiB with `chunkSize`.
    static let defaultChunks = 4

    /// The size and alignment of a huge page, and of the file blocks a window keeps in place.
    static let hugePage = 2 << 20

    let chunkCount: Int
    private let memory: UnsafeMutableRawPointer
    // The reader's state: touched by the one reader thread only, so the per-packet path skips
    // the dynamic exclusivity checks a class's stored properties would otherwise cost.
    /// Packets issued from each chunk (a plain buffer: no array checks on the per-packet path).
    private let issued: UnsafeMutablePointer<Int>
    @exclusivity(unchecked) private var current = 0
    @exclusivity(unchecked) private var used = 0
    /// Chunks holding a mapped file's pages (read-only) rather than the arena's own memory.
    @exclusivity(unchecked) private var fileMapped: [Bool]
    /// The arena's guard against SIGBUS (-1: none could be had, files are read instead).
    private let guardSlot: Int32
    let owners: ReleaseCounters

    init(chunks: Int = defaultChunks, workstreams: Int) {
        chunkCount = chunks
        let size = chunks * Self.chunkSize
        // A huge page more, to start at a 2 MiB boundary; the slack either side is unmapped.
        let reserved = mmap(nil, size + Self.hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let reserved, reserved != MAP_FAILED else {
            fatalError("out of memory mapping \(size) bytes for packets")
        }
        let lead = (Self.hugePage - Int(bitPattern: reserved) % Self.hugePage) % Self.hugePage
        if lead > 0 { munmap(reserved, lead) }
        munmap(reserved + lead + size, Self.hugePage - lead)
        memory = reserved + lead
        fileMapped = Array(repeating: false, count: chunks)
        guardSlot = netisr_guard_mapping(memory, size)
        issued = .allocate(capacity: chunks)
        issued.initialize(repeating: 0, count: chunks)
        owners = ReleaseCounters(
            workstreams: workstreams, regions: chunks, regionSize: Self.chunkSize, base: UnsafeRawPointer(memory))
    }

    deinit {
        netisr_unguard_mapping(guardSlot)
        munmap(memory, chunkCount * Self.chunkSize)
        issued.deallocate()
    }

    /// Copies `bytes` into the arena for a packet that workstream `workstream` will release, and
    /// makes the packet with `make`. Waits while the ring is full.
    @inline(__always)
    func packet(
        copying bytes: UnsafeRawBufferPointer, releasedBy workstream: Int,
        _ make: (UnsafeRawBufferPointer, PacketOwner) -> Packet
    ) -> Packet {
        owners.packet(copy(bytes), releasedBy: workstream, make)
    }

    /// Makes a packet, with `make`, over `bytes` already in a chunk (a mapped window, or a buffer
    /// lent to a capture reader), for workstream `workstream` to release.
    @inline(__always)
    func packet(
        lent bytes: UnsafeRawBufferPointer, releasedBy workstream: Int,
        _ make: (UnsafeRawBufferPointer, PacketOwner) -> Packet
    ) -> Packet {
        // An empty record may sit at its chunk's very end: place it by the byte before it (its
        // record header), and make its empty view point at the chunk's start.
        let offset = UnsafeRawPointer(bytes.baseAddress!) - UnsafeRawPointer(memory)
        let chunk = (bytes.isEmpty ? offset - 1 : offset) >> Self.chunkShift
        issued[chunk] += 1
        let view =
            bytes.isEmpty ? UnsafeRawBufferPointer(start: memory + chunk * Self.chunkSize, count: 0) : bytes
        return owners.packet(view, releasedBy: workstream, make)
    }

    /// The chunk holding a packet's bytes (made by this arena).
    @inline(__always)
    func chunk(of bytes: UnsafeRawBufferPointer) -> Int {
        (UnsafeRawPointer(bytes.baseAddress!) - UnsafeRawPointer(memory)) >> Self.chunkShift
    }

    private func copy(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let count = min(bytes.count, Self.chunkSize)
        // Even an empty frame takes a slot inside its chunk (its address names the chunk).
        let reserved = max((count + 15) & ~15, 16)
        if used + reserved > Self.chunkSize {
            _ = advance(writable: true)
            used = 0
        }
        let destination = memory + current * Self.chunkSize + used
        if count > 0 { destination.copyMemory(from: bytes.baseAddress!, byteCount: count) }
        used += reserved
        issued[current] += 1
        return UnsafeRawBufferPointer(start: destination, count: count)
    }

    /// Moves to the next chunk once it is free and returns it, made the arena's own writable
    /// memory again if `writable` and a file was mapped there (the caller sets `used`).
    private func advance(writable: Bool) -> UnsafeMutableRawPointer {
        current = (current + 1) % chunkCount
        waitUntilFree(current)
        let chunk = memory + current * Self.chunkSize
        if writable && fileMapped[current] {
            let fresh = mmap(
                chunk, Self.chunkSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
            guard fresh == chunk else { fatalError("out of memory mapping a chunk for packets") }
            fileMapped[current] = false
        }
        return chunk
    }

    /// Waits for the workers to release every packet of `chunk`: a few yields, then 20 µs
    /// sleeps (the chunk's last packets wait behind a worker's whole burst; repeated yields on a
    /// busy machine only take CPU from that worker — see NetISR's Backoff.swift).
    private func waitUntilFree(_ chunk: Int) {
        var spins = 0
        while owners.released(chunk) != issued[chunk] {
            spins += 1
            if spins <= 8 { sched_yield() } else { usleep(20) }
        }
        owners.reset(chunk)
        issued[chunk] = 0
    }

    /// Waits until every packet is released (at the end of a replay).
    func drain() {
        for chunk in 0..<chunkCount where issued[chunk] > 0 { waitUntilFree(chunk) }
    }
}

extension PacketArena: CaptureBufferProvider {
    var bufferSize: Int { Self.chunkSize }

    /// Lends the next chunk, once every packet issued from it has been released.
    func nextBuffer(retiring: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer {
        let chunk = advance(writable: true)
        used = Self.chunkSize
        return chunk
    }

    /// Whether files are mapped: when the arena's memory is guarded against SIGBUS.
    var mapsFiles: Bool { guardSlot >= 0 }

    /// Maps a window of a file over the next chunk, once every packet issued from it has been
    /// released: from `offset`, placed in the chunk as its 2 MiB block is in the file, and up to
    /// `length` bytes or the chunk's end (at least 2 MiB, well over `minimum`). Populated at once:
    /// a 1M-packet replay took 9% less wall and 10% less CPU time than reading (BENCHMARKS.md,
    /// run 32); mapped page by page at first touch it was slower.
    func nextBuffer(
        mapping descriptor: Int32, offset: Int, length: Int, minimum: Int, retiring: UnsafeMutableRawPointer?
    ) -> UnsafeRawBufferPointer? {
        let place = offset % Self.hugePage
        let count = min(length, Self.chunkSize - place)
        let window = advance(writable: false) + place
        used = Self.chunkSize
        // Marked first: a failed fixed mapping may have unmapped the chunk, to be mapped afresh.
        fileMapped[current] = true
        guard mmap(window, count, PROT_READ, MAP_PRIVATE | MAP_FIXED, descriptor, off_t(offset)) == window else {
            return nil
        }
        // Asked for before the pages are: read from disk, the file comes into the page cache in
        // huge pages, which this and later mappings map whole.
        madvise(window, count, MADV_HUGEPAGE)
        netisr_populate(window, count)
        return UnsafeRawBufferPointer(start: window, count: count)
    }
}

/// Release counts of packets whose bytes lie in a memory area cut into equal regions (arena
/// chunks, capture-ring blocks), one PacketOwner per workstream so each worker counts on its own
/// cache lines.
final class ReleaseCounters: @unchecked Sendable {  // unchecked: immutable after init; counters are atomic
    private let owners: [RegionOwner]
    /// The owners again, handed out without reference counting (see NetISR's UnretainedArray).
    private let unretained: UnsafeMutablePointer<Unmanaged<RegionOwner>>

    init(workstreams: Int, regions: Int, regionSize: Int, base: UnsafeRawPointer) {
        owners = (0..<workstreams).map { _ in RegionOwner(regions: regions, regionSize: regionSize, base: base) }
        unretained = .allocate(capacity: owners.count)
        unretained.initialize(from: owners.map { Unmanaged.passUnretained($0) }, count: owners.count)
    }

    deinit { unretained.deallocate() }

    /// Makes a packet over `bytes` that workstream `workstream`'s owner will count.
    @inline(__always)
    func packet(
        _ bytes: UnsafeRawBufferPointer, releasedBy workstream: Int,
        _ make: (UnsafeRawBufferPointer, PacketOwner) -> Packet
    ) -> Packet {
        var made: Packet?
        unretained[workstream]._withUnsafeGuaranteedRef { made = make(bytes, $0) }
        return made.take()!
    }

    /// Packets released from `region`, over all workstreams.
    func released(_ region: Int) -> Int { owners.reduce(0) { $0 + $1.released(region) } }

    /// Zeroes `region`'s counts (when it is reused).
    func reset(_ region: Int) { for owner in owners { owner.reset(region) } }
}

/// Counts releases per region for one workstream.
/// (`@unchecked Sendable`: the counters are atomics; the rest is immutable.)
final class RegionOwner: PacketOwner, @unchecked Sendable {
    private let counts: UnsafeMutablePointer<Atomic<Int>>
    private let regions: Int
    private let regionSize: Int
    /// log2 of `regionSize` when it is a power of two (arena chunks, the usual ring blocks), else
    /// -1: a release then shifts instead of dividing (a 64-bit division on every packet).
    private let regionShift: Int
    private let base: UnsafeRawPointer

    init(regions: Int, regionSize: Int, base: UnsafeRawPointer) {
        self.regions = regions
        self.regionSize = regionSize
        regionShift = regionSize > 0 && regionSize & (regionSize - 1) == 0 ? regionSize.trailingZeroBitCount : -1
        self.base = base
        counts = .allocate(capacity: regions)
        for index in 0..<regions { (counts + index).initialize(to: Atomic(0)) }
    }

    deinit {
        counts.deinitialize(count: regions)
        counts.deallocate()
    }

    override func release(_ bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress else { return }
        let offset = start - base
        counts[regionShift >= 0 ? offset >> regionShift : offset / regionSize].wrappingAdd(1, ordering: .releasing)
    }

    func released(_ region: Int) -> Int { counts[region].load(ordering: .acquiring) }

    func reset(_ region: Int) { counts[region].store(0, ordering: .relaxed) }
}
