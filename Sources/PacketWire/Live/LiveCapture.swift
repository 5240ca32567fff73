// LiveCapture: frames from a Linux interface through an AF_PACKET TPACKET_V3 receive ring.
//
// The kernel fills blocks of the memory-mapped ring; `read` waits for the next block, hands each
// of its frames to the caller as a view (valid during the callback) and gives the block back to
// the kernel afterwards. VLAN tags the kernel stripped into the frame's metadata are put back
// (as libpcap does) so flows see them; on loopback the outgoing copy of each packet is skipped,
// again as libpcap does, so every packet is seen once. The C side (CLinuxCapture) keeps the
// kernel's structs. `any`, and interfaces whose link header the parser does not read, are
// captured cooked (SOCK_DGRAM) and given a Linux cooked v2 header, copied, as libpcap does.
//
// Start-up order, so no frame is seen unfiltered, from another interface or twice: the socket is
// opened receiving nothing, its filter attached, then bound to the interface. A fanout group's
// sockets each see every frame between their bind and their join, so the group starts at a
// timestamp taken after the last join, and earlier frames are skipped.

import CLinuxCapture

#if canImport(Glibc)
    import Glibc
#endif

/// Options of the receive ring.
public struct LiveCaptureOptions: Sendable {
    /// Bytes per ring block (a power of two, a multiple of the page size). Smaller blocks reach
    /// user space sooner (a 256 KiB block fills in under 2 ms at 1 Gbit/s) and, with zero-copy,
    /// a block held for its queued packets leaves more of the ring to the kernel.
    public var blockSize = 256 << 10
    /// Blocks in the ring.
    public var blockCount = 128
    /// A block is handed over after this long even if not full.
    public var retireMilliseconds = 10
    /// Put the interface in promiscuous mode.
    public var promiscuous = false
    /// A filter in tcpdump's syntax (`tcp port 443`), compiled by libpcap loaded at run time and
    /// attached before any frame arrives; nil for every frame. On cooked captures (`any`) the
    /// kernel filters from the network header, so link-layer primitives (`ether`, `arp`, `vlan`)
    /// are refused there.
    public var filter: String?
    /// The most bytes kept of each frame (tcpdump's `-s`), 1…262144; nil keeps whole frames. The
    /// kernel cuts frames before they enter the ring (the socket filter's return value, as libpcap
    /// sets it), so a short snapshot also saves ring space and copying; original lengths stay.
    public var snapLength: Int?

    /// The defaults: 32 MiB of ring in 256 KiB blocks, retired after 10 ms.
    public init() {}
}

/// Reads frames from a live Linux interface.
///
/// Thread-safety: use from one thread at a time (it may be handed to another thread).
public final class LiveCapture: @unchecked Sendable {  // unchecked: one user at a time, as documented
    private var ring = netisr_ring()
    private var nextBlock: UInt32 = 0
    private let skipOutgoing: Bool
    private var scratch = [UInt8](repeating: 0, count: 65_536 + LiveCapture.cookedHeaderLength)
    /// A Linux cooked v2 header's length.
    private static let cookedHeaderLength = 20
    private var lastStatistics: (packets: UInt64, drops: UInt64) = (0, 0)
    /// Frames timestamped earlier (nanoseconds since the epoch) are skipped: see `fanout`.
    private var startTimestamp: UInt64 = 0
    /// The most bytes kept of each frame (`LiveCaptureOptions.snapLength`).
    public let snapLength: Int
    /// The interface.
    public let interface: String
    /// What its frames start with, as libpcap chooses by the interface's hardware type: Ethernet
    /// (Ethernet and loopback devices), the IP header (tun, WireGuard, IP-in-IP and other devices
    /// without a link header), or a Linux cooked (SLL2) header made from what the kernel tells of
    /// the link layer (`any`, and every other type).
    public let linkType: LinkType

    /// Opens `interface` (`any`: every interface) with `options` (filter attached) and starts
    /// receiving. Needs CAP_NET_RAW.
    public convenience init(interface: String, options: LiveCaptureOptions = LiveCaptureOptions())
        throws(CaptureError)
    {
        try self.init(unboundInterface: interface, options: options)
        try bind(promiscuous: options.promiscuous)
    }

    private init(unboundInterface interface: String, options: LiveCaptureOptions) throws(CaptureError) {
        self.interface = interface
        snapLength = options.snapLength ?? CaptureReader.maximumCapturedLength
        skipOutgoing = interface == "lo"
        var message = [CChar](repeating: 0, count: 256)
        let status = netisr_ring_open(
            &ring, interface, UInt32(options.blockSize), UInt32(options.blockCount),
            UInt32(options.retireMilliseconds), &message, message.count)
        guard status == 0 else {
            throw CaptureError(
                .io, at: 0, String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        linkType = LinkType(rawValue: UInt32(ring.link_type))
        if options.filter != nil || options.snapLength != nil {
            try attachFilter(options.filter, snapLength: options.snapLength)
        }
    }

    /// Opens `sockets` captures of `interface` in one PACKET_FANOUT group in hash mode: the kernel
    /// spreads flows over them (both directions of a flow to the same socket), each to be read by
    /// its own thread. Every frame from the returned moment on reaches exactly one of them.
    public static func fanout(interface: String, options: LiveCaptureOptions = LiveCaptureOptions(), sockets: Int)
        throws(CaptureError) -> [LiveCapture]
    {
        var group: UInt32 = 0
        var captures: [LiveCapture] = []
        for index in 0..<max(sockets, 1) {
            let capture = try LiveCapture(unboundInterface: interface, options: options)
            try capture.bind(promiscuous: options.promiscuous)
            // The first socket creates the group; the kernel's first id after boot is 0.
            let status = netisr_ring_join_fanout(&capture.ring, &group, index == 0 ? 1 : 0)
            guard status == 0 else {
                throw CaptureError(
                    .io, at: 0, "cannot join a fanout group on \(interface): \(String(cString: strerror(status)))")
            }
            captures.append(capture)
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let start = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        for capture in captures { capture.startTimestamp = start }
        return captures
    }

    private func bind(promiscuous: Bool) throws(CaptureError) {
        if promiscuous && ring.interface_index == 0 {
            throw CaptureError(.io, at: 0, "promiscuous mode needs one interface, not \(interface)")
        }
        let status = netisr_ring_bind(&ring, promiscuous ? 1 : 0)
        guard status == 0 else {
            throw CaptureError(.io, at: 0, "cannot bind to \(interface): \(String(cString: strerror(status)))")
        }
    }

    deinit { netisr_ring_close(&ring) }

    /// The ring's memory: a frame whose bytes lie here belongs to block
    /// `(address - ringBase) / blockSize` (see `readKeepingBlock`).
    public var ringBase: UnsafeRawPointer { UnsafeRawPointer(ring.map) }
    /// Bytes per block.
    public var blockSize: Int { Int(ring.block_size) }
    /// Blocks in the ring.
    public var blockCount: Int { Int(ring.block_count) }

    /// Waits up to `timeoutMilliseconds` for a block and calls `body` with each of its frames,
    /// then gives the block back to the kernel.
    ///
    /// - Returns: how many frames were delivered (0 when the wait timed out).
    @discardableResult
    public func read(timeoutMilliseconds: Int32 = 100, _ body: (CaptureRecord) throws -> Void) rethrows -> Int {
        guard
            let (index, delivered) = try readKeepingBlock(
                timeoutMilliseconds: timeoutMilliseconds, { record, _ in try body(record) })
        else { return 0 }
        release(block: index)
        return delivered
    }

    /// Like `read`, but the block stays the caller's — its frames' bytes stay valid — until
    /// `release(block:)`; `body` learns whether each record's bytes lie in the ring (false for a
    /// frame rebuilt with its VLAN tag, valid only during the call). Blocks must be released in
    /// the order they were read; until then the kernel skips them (and counts drops when full).
    ///
    /// - Returns: the block's index and how many frames were delivered; nil when the wait timed out.
    public func readKeepingBlock(
        timeoutMilliseconds: Int32 = 100, _ body: (CaptureRecord, _ inRing: Bool) throws -> Void
    ) rethrows -> (block: Int, frames: Int)? {
        guard let block = netisr_ring_block(&ring, nextBlock, timeoutMilliseconds) else { return nil }
        let index = Int(nextBlock)
        nextBlock = (nextBlock + 1) % ring.block_count
        var delivered = 0
        var packet = netisr_block_first_packet(block)
        var frame = netisr_frame()
        for _ in 0..<netisr_block_packet_count(block) {
            guard let current = packet else { break }
            packet = netisr_packet_read(current, &frame)
            if skipOutgoing && frame.outgoing != 0 || frame.timestamp_ns < startTimestamp { continue }
            let bytes = UnsafeRawBufferPointer(start: frame.data, count: Int(frame.captured_length))
            if linkType == .linuxSLL2 {
                try withCookedHeader(bytes, frame) { cooked in
                    try body(record(cooked, frame, extra: Self.cookedHeaderLength), false)
                }
            } else if frame.vlan_valid != 0, linkType == .ethernet, bytes.count >= 12 {
                try withVLANReinserted(bytes, frame) { tagged in
                    try body(record(tagged, frame, extra: 4), false)
                }
            } else {
                try body(record(bytes, frame, extra: 0), true)
            }
            delivered += 1
        }
        return (index, delivered)
    }

    /// Gives block `block` back to the kernel.
    public func release(block: Int) {
        netisr_ring_release(UnsafeMutableRawPointer(ring.map) + block * Int(ring.block_size))
    }

    /// Moves the calling thread (only) into the named network namespace (`ip netns add NAME`), so a
    /// capture opened afterwards on this thread sees that namespace's interfaces.
    public static func enterNetworkNamespace(named name: String) throws(CaptureError) {
        let status = netisr_enter_network_namespace("/var/run/netns/\(name)")
        guard status == 0 else {
            throw CaptureError(
                .io, at: 0, "cannot enter network namespace \(name): \(String(cString: strerror(status)))")
        }
    }

    /// Packets the kernel dropped (ring full) and received since the capture opened.
    public func statistics() -> (received: UInt64, dropped: UInt64) {
        var packets: UInt64 = 0
        var drops: UInt64 = 0
        if netisr_ring_statistics(&ring, &packets, &drops) == 0 {
            lastStatistics.packets += packets
            lastStatistics.drops += drops
        }
        return (lastStatistics.packets, lastStatistics.drops)
    }

    /// Attaches a filter in tcpdump's syntax, compiled by libpcap loaded at run time (a clear
    /// error when libpcap is missing or the expression is wrong), and/or the snapshot length:
    /// without an expression, a one-instruction program keeping every frame, cut.
    private func attachFilter(_ expression: String?, snapLength: Int?) throws(CaptureError) {
        if let snapLength, !(1...CaptureReader.maximumCapturedLength).contains(snapLength) {
            throw CaptureError(.io, at: 0, "snapshot length \(snapLength) is not within 1…262144")
        }
        // libpcap's DLT numbers: DLT_EN10MB, or DLT_RAW as Linux numbers it — also for cooked
        // sockets, whose filters see frames from the network header.
        let filter: PacketFilter
        do {
            filter =
                if let expression {
                    try PacketFilter(
                        expression, dataLinkType: linkType == .ethernet ? 1 : 12,
                        snapLength: snapLength ?? CaptureReader.maximumCapturedLength)
                } else {
                    // BPF_RET | BPF_K: keep that many bytes of every frame.
                    try PacketFilter(instructions: [
                        PacketFilter.Instruction(
                            code: 0x06, constant: UInt32(snapLength ?? CaptureReader.maximumCapturedLength))
                    ])
                }
        } catch {
            throw CaptureError(.io, at: 0, error.message)
        }
        let program = filter.kernelProgram
        let status = program.withUnsafeBytes {
            netisr_ring_attach_filter(&ring, $0.baseAddress, UInt32(filter.instructions.count))
        }
        guard status == 0 else { throw CaptureError(.io, at: 0, "cannot attach the filter (errno \(status))") }
    }

    /// A frame as read, `extra` bytes of header put back, cut to the snapshot length (which counts
    /// those bytes too, as libpcap's does).
    private func record(_ bytes: UnsafeRawBufferPointer, _ frame: netisr_frame, extra: Int) -> CaptureRecord {
        CaptureRecord(
            bytes: bytes.count > snapLength ? UnsafeRawBufferPointer(rebasing: bytes.prefix(snapLength)) : bytes,
            originalLength: Int(frame.original_length) + extra, timestamp: frame.timestamp_ns,
            linkType: linkType, interfaceID: 0, fileOffset: 0)
    }

    /// A cooked frame behind the Linux cooked v2 (SLL2) header libpcap would give it: EtherType,
    /// reserved, interface index, ARPHRD type, packet type, address length, 8 address bytes.
    private func withCookedHeader<R>(
        _ bytes: UnsafeRawBufferPointer, _ frame: netisr_frame, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        let header = Self.cookedHeaderLength
        let length = min(bytes.count, scratch.count - header)
        return try scratch.withUnsafeMutableBytes { buffer in
            func put(_ value: UInt32, at offset: Int, bytes count: Int) {
                for index in 0..<count {
                    buffer[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - index)))
                }
            }
            put(UInt32(frame.protocol), at: 0, bytes: 2)
            put(0, at: 2, bytes: 2)
            put(UInt32(bitPattern: frame.interface_index), at: 4, bytes: 4)
            put(UInt32(frame.hardware_type), at: 8, bytes: 2)
            buffer[10] = frame.packet_type
            buffer[11] = frame.address_length
            withUnsafeBytes(of: frame.address) { address in
                for index in 0..<8 { buffer[12 + index] = address[index] }
            }
            UnsafeMutableRawBufferPointer(rebasing: buffer[header..<(header + length)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
            return try body(UnsafeRawBufferPointer(rebasing: buffer[0..<(header + length)]))
        }
    }

    /// The frame with its 802.1Q (or 802.1ad) tag back after the MAC addresses.
    private func withVLANReinserted<R>(
        _ bytes: UnsafeRawBufferPointer, _ frame: netisr_frame, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        let length = min(bytes.count, scratch.count - 4)
        return try scratch.withUnsafeMutableBytes { buffer in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<12]))
            buffer[12] = UInt8(frame.vlan_tpid >> 8)
            buffer[13] = UInt8(frame.vlan_tpid & 0xFF)
            buffer[14] = UInt8(frame.vlan_tci >> 8)
            buffer[15] = UInt8(frame.vlan_tci & 0xFF)
            UnsafeMutableRawBufferPointer(rebasing: buffer[16..<(length + 4)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[12..<length]))
            return try body(UnsafeRawBufferPointer(rebasing: buffer[0..<(length + 4)]))
        }
    }
}
