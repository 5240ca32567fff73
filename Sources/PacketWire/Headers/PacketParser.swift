// PacketParser: classifies a frame the way tshark's L2–L4 dissectors do with reassembly off
// (../shared/oracle/README.md), and extracts its flow key.
//
// Two notions matter and are kept apart:
// - "entered": tshark lists a protocol in frame.protocols as soon as its dissector is called,
//   even if the header then turns out cut short or bogus. `network`/`transport` follow this:
//   a frame whose Ethernet type says IPv4 is an IPv4 frame even if the IPv4 header is garbage.
// - "sane": conversation tables and flow keys only take headers tshark fully accepted (IPv4:
//   version 4, IHL ≥ 5, header captured, total length ≥ header; TCP/UDP: header complete).
// Rules that follow tshark: only an IP datagram's first fragment (offset 0) carries ports; a
// non-first IPv6 fragment is not an IPv6 conversation event; headers quoted in ICMP errors are
// not counted. Every read is bounds-checked through ByteView; malformed bytes end the parse,
// never trap. Tunnel nesting is bounded (8 levels).

/// Parses frames into `PacketSummary` values. Stateless; safe to use from any thread.
public enum PacketParser {
    static let maximumDepth = 8

    /// Parses one frame of the given link type.
    public static func parse(_ bytes: UnsafeRawBufferPointer, linkType: LinkType) -> PacketSummary {
        var summary = PacketSummary()
        parse(bytes, linkType: linkType, into: &summary)
        return summary
    }

    /// The frame's network protocol only: the link layers are walked and parsing stops where the
    /// network layer starts (what a link-layer demultiplexer needs).
    public static func networkProtocol(_ bytes: UnsafeRawBufferPointer, linkType: LinkType) -> NetworkProtocol {
        var summary = PacketSummary()
        withUnsafeMutablePointer(to: &summary) { parse(bytes, linkType: linkType, output: $0, extent: .network) }
        return summary.network
    }

    /// Parses as far as the outermost IP header into `summary` (reset first): its `network` and,
    /// for IP, a `flow` with the header's addresses and protocol but no ports — the RSS 2-tuple a
    /// NIC hashes to place a frame before anything parses it fully.
    public static func parseFlowAddresses(
        _ bytes: UnsafeRawBufferPointer, linkType: LinkType, into summary: inout PacketSummary
    ) {
        summary.reset()
        withUnsafeMutablePointer(to: &summary) { parse(bytes, linkType: linkType, output: $0, extent: .flowAddresses) }
    }

    /// The outer IPv4 addresses of the commonest frame — Ethernet II, with at most one 802.1Q
    /// tag, carrying an IPv4 header without options — read at fixed offsets, for a reader that
    /// places frames by address pair; nil for every other frame. When not nil,
    /// `parseFlowAddresses` of the frame finds network `.ipv4` and a flow between these
    /// addresses: it is the same answer without the general walk.
    @inlinable
    public static func ethernetIPv4Addresses(_ bytes: UnsafeRawBufferPointer) -> (source: UInt32, destination: UInt32)?
    {
        // 14 bytes of Ethernet (18 with a tag), 20 of IPv4: type 0x0800, version 4 and IHL 5, a
        // total length of 0 (offload: the frame's) or at least the header.
        let link = ethernetHeaderLength(bytes)
        guard bytes.count >= link + 20, bytes[link - 2] == 0x08, bytes[link - 1] == 0x00, bytes[link] == 0x45 else {
            return nil
        }
        let totalLength = UInt16(bytes[link + 2]) << 8 | UInt16(bytes[link + 3])
        guard totalLength == 0 || totalLength >= 20 else { return nil }
        return (
            UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: link + 12, as: UInt32.self)),
            UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: link + 16, as: UInt32.self))
        )
    }

    /// The outer IPv6 addresses of an Ethernet II frame (with at most one 802.1Q tag) carrying
    /// IPv6, read at fixed offsets (the reader's counterpart of `ethernetIPv4Addresses`); nil for
    /// every other frame. When not nil, `parseFlowAddresses` finds network `.ipv6` and a flow
    /// between these addresses.
    @inlinable
    public static func ethernetIPv6Addresses(_ bytes: UnsafeRawBufferPointer)
        -> (source: IPAddress, destination: IPAddress)?
    {
        // 14 bytes of Ethernet (18 with a tag), 40 of IPv6: type 0x86DD, version 6.
        let link = ethernetHeaderLength(bytes)
        guard bytes.count >= link + 40, bytes[link - 2] == 0x86, bytes[link - 1] == 0xDD, bytes[link] >> 4 == 6 else {
            return nil
        }
        @inline(__always) func u64(_ offset: Int) -> UInt64 {
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        return (
            IPAddress(ipv6High: u64(link + 8), low: u64(link + 16)),
            IPAddress(ipv6High: u64(link + 24), low: u64(link + 32))
        )
    }

    /// 18 for a frame that starts with an 802.1Q tag (Ethernet type 0x8100), otherwise 14: where
    /// the network header of a frame with at most one tag starts, its Ethernet type in the two
    /// bytes before. (A frame too short for either is refused by the callers' length checks.)
    @inlinable @inline(__always)
    static func ethernetHeaderLength(_ bytes: UnsafeRawBufferPointer) -> Int {
        bytes.count >= 18 && bytes[12] == 0x81 && bytes[13] == 0x00 ? 18 : 14
    }

    /// Parses one frame into `summary` (which is reset first), without copying the result.
    public static func parse(_ bytes: UnsafeRawBufferPointer, linkType: LinkType, into summary: inout PacketSummary) {
        if linkType == .ethernet && parseCommonFrame(bytes, into: &summary) { return }
        walk(bytes, linkType: linkType, into: &summary)
    }

    /// The general parse, header by header (what `parse` does for every frame
    /// `parseCommonFrame` leaves).
    static func walk(_ bytes: UnsafeRawBufferPointer, linkType: LinkType, into summary: inout PacketSummary) {
        summary.reset()
        withUnsafeMutablePointer(to: &summary) { parse(bytes, linkType: linkType, output: $0, extent: .full) }
    }

    /// The commonest frames, read at fixed offsets: Ethernet II, with at most one 802.1Q tag,
    /// carrying IPv4 without options and not a later fragment, or IPv6 without extension headers
    /// and with a payload length, either with a complete TCP or UDP header right after the IP
    /// header or with ICMP/ICMPv6. The result is exactly the walk's (tests compare the two on
    /// random and on every reference frame); for any other frame this returns false having
    /// written nothing, and the walk takes it. Most of a replay's frames take this path (IPv4, 1M
    /// packets: 660 → 650 and 730 → 710 ms CPU in two sittings; IPv6 added with the reader's
    /// `ethernetIPv6Addresses`: 580 → 540 and 600 → 590; the tagged tenth of the benchmark
    /// capture's frames added later).
    @inline(__always)
    static func parseCommonFrame(_ bytes: UnsafeRawBufferPointer, into summary: inout PacketSummary) -> Bool {
        @inline(__always) func u16(_ offset: Int) -> UInt16 {
            UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        }
        @inline(__always) func u32(_ offset: Int) -> UInt32 {
            UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }
        @inline(__always) func u64(_ offset: Int) -> UInt64 {
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        guard bytes.count >= 34 else { return false }
        // One 802.1Q tag, the commonest, moves the network header 4 bytes on.
        let link = ethernetHeaderLength(bytes)
        let vlan = link == 18 ? u16(14) & 0x0FFF : nil
        let network: NetworkProtocol
        let source: IPAddress
        let destination: IPAddress
        let ipProtocol: UInt8
        /// Where the transport header starts, and how many bytes of IP payload the frame holds.
        let transportOffset: Int
        let payloadLength: Int
        switch u16(link - 2) {
        case 0x0800:
            // IPv4 version 4, IHL 5; total length 0 (offload: the frame's) or at least the
            // header; fragment offset 0. The payload ends at the total length or where the
            // capture does.
            guard bytes.count >= link + 20, bytes[link] == 0x45, u16(link + 6) & 0x1FFF == 0 else { return false }
            let lengthField = Int(u16(link + 2))
            let ipLength = min(lengthField == 0 ? bytes.count - link : lengthField, bytes.count - link)
            guard ipLength >= 20 else { return false }
            network = .ipv4
            (source, destination) = (IPAddress(ipv4: u32(link + 12)), IPAddress(ipv4: u32(link + 16)))
            ipProtocol = bytes[link + 9]
            (transportOffset, payloadLength) = (link + 20, ipLength - 20)
        case 0x86DD:
            // IPv6 version 6 with a nonzero payload length (0 means a jumbogram or offload,
            // which the walk handles) and no extension header (TCP, UDP, ICMPv6 follow at once).
            guard bytes.count >= link + 40, bytes[link] >> 4 == 6 else { return false }
            let lengthField = Int(u16(link + 4))
            guard lengthField != 0 else { return false }
            network = .ipv6
            source = IPAddress(ipv6High: u64(link + 8), low: u64(link + 16))
            destination = IPAddress(ipv6High: u64(link + 24), low: u64(link + 32))
            ipProtocol = bytes[link + 6]
            (transportOffset, payloadLength) = (link + 40, min(lengthField, bytes.count - link - 40))
        default:
            return false
        }
        var ports: (source: UInt16, destination: UInt16) = (0, 0)
        var flags: UInt8 = 0
        var icmpTypeCode: UInt16?
        let transport: TransportProtocol
        switch ipProtocol {
        case 6:
            // A TCP header of at least 20 bytes, all of it inside the IP payload.
            guard payloadLength >= 20 else { return false }
            let headerLength = Int(bytes[transportOffset + 12] >> 4) * 4
            guard headerLength >= 20, payloadLength >= headerLength else { return false }
            ports = (u16(transportOffset), u16(transportOffset + 2))
            flags = bytes[transportOffset + 13]
            transport = .tcp
        case 17:
            // A UDP header whose length field is at least its own 8 bytes.
            guard payloadLength >= 8, u16(transportOffset + 4) >= 8 else { return false }
            ports = (u16(transportOffset), u16(transportOffset + 2))
            transport = .udp
        case 1, 58:
            transport = ipProtocol == 1 ? .icmp : .icmpv6
            if payloadLength >= 2 { icmpTypeCode = u16(transportOffset) }
        default:
            return false
        }
        summary.reset()
        summary.vlan = vlan
        summary.network = network
        summary.transport = transport
        summary.flow = FlowKey(
            source: source, destination: destination, sourcePort: ports.source, destinationPort: ports.destination,
            ipProtocol: ipProtocol)
        summary.tcpFlags = flags
        summary.icmpTypeCode = icmpTypeCode
        summary.events.append(
            ConversationEvent(
                kind: network == .ipv4 ? .ipv4 : .ipv6, source: source, destination: destination, sourcePort: 0,
                destinationPort: 0, tcpFlags: 0))
        if transport == .tcp || transport == .udp {
            summary.events.append(
                ConversationEvent(
                    kind: transport == .tcp ? .tcp : .udp, source: source, destination: destination,
                    sourcePort: ports.source, destinationPort: ports.destination, tcpFlags: flags))
        }
        return true
    }

    private static func parse(
        _ bytes: UnsafeRawBufferPointer, linkType: LinkType, output: UnsafeMutablePointer<PacketSummary>,
        extent: ParseExtent
    ) {
        var state = ParseState(output: output)
        state.extent = extent
        let view = ByteView(bytes)
        switch linkType {
        case .ethernet: state.ethernet(view)
        case .linuxSLL: state.linuxCooked(view)
        case .linuxSLL2: state.linuxCooked2(view)
        case .raw, .rawBSD12, .rawBSD14: state.rawIP(view)
        case .ipv4:
            state.ipv4(view, depth: 0)
            state.markEmptyIfNothingEntered()
        case .ipv6:
            state.ipv6(view, depth: 0)
            state.markEmptyIfNothingEntered()
        case .null: state.null(view, networkOrder: false)
        case .loop: state.null(view, networkOrder: true)
        case .ppp, .pppHDLC: state.ppp(view)
        default: break
        }
    }
}

/// How far a parse goes.
enum ParseExtent {
    /// Until the network layer is known.
    case network
    /// Through the outermost IP header (its addresses make the flow, without ports).
    case flowAddresses
    /// Everything.
    case full
}

/// The parse in progress. It writes straight into the caller's summary (no copy of the result).
struct ParseState {
    private let output: UnsafeMutablePointer<PacketSummary>
    private var sawNetwork = false
    private var sawTransport = false
    /// How far to go.
    var extent = ParseExtent.full

    init(output: UnsafeMutablePointer<PacketSummary>) { self.output = output }

    /// The summary being filled in.
    private var summary: PacketSummary {
        _read { yield output.pointee }
        nonmutating _modify { yield &output.pointee }
    }

    /// On raw-IP link types there is no link-layer protocol: if IP rejected the frame, tshark's
    /// protocol list is empty.
    mutating func markEmptyIfNothingEntered() {
        if !sawNetwork { summary.network = .none }
    }

    // MARK: Link layers

    mutating func ethernet(_ view: ByteView) {
        guard let type = view.u16(12) else { return }
        etherType(type, view.suffix(from: 14), depth: 0)
    }

    /// Dispatches on an Ethernet type (or an 802.3 length, which means LLC follows).
    mutating func etherType(_ type: UInt16, _ payload: ByteView, depth: Int) {
        guard depth < PacketParser.maximumDepth else { return }
        if type <= 1500 {
            llc(payload, depth: depth)
            return
        }
        switch type {
        case 0x0800: ipv4(payload, depth: depth)
        case 0x86DD: ipv6(payload, depth: depth)
        case 0x0806, 0x8035: enterNetwork(.arp)
        case 0x8100, 0x88A8, 0x9100:
            guard let tci = payload.u16(0), let inner = payload.u16(2) else { return }
            if summary.vlan == nil { summary.vlan = tci & 0x0FFF }
            etherType(inner, payload.suffix(from: 4), depth: depth + 1)
        default: return
        }
    }

    /// IEEE 802.2 LLC: only SNAP with an Ethernet-type OUI leads anywhere here.
    mutating func llc(_ view: ByteView, depth: Int) {
        guard view.u8(0) == 0xAA, view.u8(1) == 0xAA, view.u8(2) == 0x03,
            let ouiHigh = view.u16(3), let ouiLow = view.u8(5), let type = view.u16(6)
        else { return }
        let oui = UInt32(ouiHigh) << 8 | UInt32(ouiLow)
        guard oui == 0x000000 || oui == 0x0000F8 else { return }
        etherType(type, view.suffix(from: 8), depth: depth + 1)
    }

    mutating func linuxCooked(_ view: ByteView) {
        guard view.count >= 16, let hardware = view.u16(2), let protocolType = view.u16(14) else { return }
        cookedPayload(hardware: hardware, protocolType: protocolType, view.suffix(from: 16))
    }

    mutating func linuxCooked2(_ view: ByteView) {
        guard view.count >= 20, let protocolType = view.u16(0), let hardware = view.u16(8) else { return }
        cookedPayload(hardware: hardware, protocolType: protocolType, view.suffix(from: 20))
    }

    private mutating func cookedPayload(hardware: UInt16, protocolType: UInt16, _ payload: ByteView) {
        // ARPHRD_NETLINK (824) carries netlink messages. (ARPHRD_IPGRE's protocol field is still an
        // Ethernet type, which tshark follows when its GRE dissector is off.)
        if hardware == 824 { return }
        switch protocolType {
        case 0x0004: llc(payload, depth: 0)
        case 0x0000...0x05DC: return
        default: etherType(protocolType, payload, depth: 0)
        }
    }

    mutating func rawIP(_ view: ByteView) {
        guard let first = view.u8(0) else { return }
        switch first & 0xF0 {
        case 0x40: ipv4(view, depth: 0)
        case 0x60: ipv6(view, depth: 0)
        default: return
        }
    }

    /// BSD loopback: a 4-byte address family, in host byte order (`null`) or network order (`loop`).
    mutating func null(_ view: ByteView, networkOrder: Bool) {
        guard var family = networkOrder ? view.u32(0) : view.u32le(0) else { return }
        if !networkOrder, family & 0xFFFF_0000 != 0, family & 0x0000_FFFF == 0 { family = family.byteSwapped }
        let payload = view.suffix(from: 4)
        switch family {
        case 2: ipv4(payload, depth: 0)
        case 10, 24, 28, 30: ipv6(payload, depth: 0)
        case 1501...0xFFFF: etherType(UInt16(family), payload, depth: 0)
        default: return
        }
    }

    /// PPP: HDLC-like framing's address and control bytes (0xFF 0x03) if present, then the
    /// protocol field: one byte when compressed (an odd first byte), else two. IPv4 and IPv6 lead
    /// on; anything else (control protocols, MPLS) ends the walk.
    mutating func ppp(_ view: ByteView) {
        let framed = view.u8(0) == 0xFF && view.u8(1) == 0x03
        let start = framed ? 2 : 0
        guard let first = view.u8(start) else { return }
        let compressed = first & 1 == 1
        guard let number = compressed ? UInt16(first) : view.u16(start) else { return }
        let payload = view.suffix(from: start + (compressed ? 1 : 2))
        switch number {
        case 0x0021: ipv4(payload, depth: 0)
        case 0x0057: ipv6(payload, depth: 0)
        default: return
        }
    }

    // MARK: Network layer

    private mutating func enterNetwork(_ kind: NetworkProtocol) {
        if !sawNetwork {
            sawNetwork = true
            summary.network = kind
        }
    }

    private mutating func enterTransport(_ kind: TransportProtocol) {
        if !sawTransport && sawNetwork {
            sawTransport = true
            summary.transport = kind
        }
    }

    mutating func ipv4(_ view: ByteView, depth: Int) {
        enterNetwork(.ipv4)
        if extent == .network { return }
        guard depth < PacketParser.maximumDepth, let first = view.u8(0) else { return }
        let version = first >> 4
        if version == 6 {
            ipv6(view, depth: depth + 1)
            return
        }
        let headerLength = Int(first & 0x0F) * 4
        // A total length of 0 is a segmentation-offload ("big TCP") packet: its length is the frame's.
        guard version == 4, headerLength >= 20, let lengthField = view.u16(2).map(Int.init) else { return }
        let totalLength = lengthField == 0 ? view.count : lengthField
        guard totalLength >= headerLength, view.count >= headerLength,
            let fragment = view.u16(6), let ipProtocol = view.u8(9),
            let source = view.u32(12), let destination = view.u32(16)
        else { return }
        let sourceAddress = IPAddress(ipv4: source)
        let destinationAddress = IPAddress(ipv4: destination)
        summary.events.append(
            ConversationEvent(
                kind: .ipv4, source: sourceAddress, destination: destinationAddress, sourcePort: 0, destinationPort: 0,
                tcpFlags: 0))
        let isOuter = summary.flow == nil
        if isOuter {
            summary.flow = FlowKey(source: sourceAddress, destination: destinationAddress, ipProtocol: ipProtocol)
            if extent == .flowAddresses { return }
        }
        guard fragment & 0x1FFF == 0 else { return }
        let payload = view.prefix(totalLength).suffix(from: headerLength)
        transport(
            ipProtocol, payload, source: sourceAddress, destination: destinationAddress, isOuter: isOuter,
            depth: depth)
    }

    mutating func ipv6(_ view: ByteView, depth: Int) {
        // tshark's IPv6 dissector rejects a wrong version outright (the frame is not IPv6 at all).
        if let first = view.u8(0), first >> 4 != 6 { return }
        enterNetwork(.ipv6)
        if extent == .network { return }
        guard depth < PacketParser.maximumDepth, view.count >= 40, let first = view.u8(0), first >> 4 == 6,
            let payloadLength = view.u16(4), var next = view.u8(6),
            let sourceHigh = view.u32(8), let sourceHigh2 = view.u32(12), let sourceLow = view.u32(16),
            let sourceLow2 = view.u32(20), let destinationHigh = view.u32(24), let destinationHigh2 = view.u32(28),
            let destinationLow = view.u32(32), let destinationLow2 = view.u32(36)
        else { return }
        let sourceAddress = IPAddress(
            ipv6High: UInt64(sourceHigh) << 32 | UInt64(sourceHigh2), low: UInt64(sourceLow) << 32 | UInt64(sourceLow2))
        let destinationAddress = IPAddress(
            ipv6High: UInt64(destinationHigh) << 32 | UInt64(destinationHigh2),
            low: UInt64(destinationLow) << 32 | UInt64(destinationLow2))
        var payload = payloadLength == 0 ? view.suffix(from: 40) : view.prefix(40 + Int(payloadLength)).suffix(from: 40)
        // Extension headers: hop-by-hop (0), routing (43), fragment (44), destination options (60).
        // tshark's tap sees the header only if the chain parses: a truncated extension header, a
        // payload length of 0 without a jumbo option that fits, or an extension header whose
        // dissector is off in per-packet mode (AH 51, mobility 135, HIP 139, shim6 140) hide it.
        // A payload length of 0 is a jumbogram when a hop-by-hop jumbo option says so;
        // otherwise tshark takes the rest of the frame (segmentation offload) and, as observed on
        // the reference captures, then counts UDP but not TCP conversations.
        var isFirstFragment = true
        var tapped = true
        var countsTCP = true
        var finalDestination = destinationAddress
        var hops = 0
        if payloadLength == 0 {
            switch next {
            case 0: tapped = Self.jumboPayloadFits(payload, next: next)
            case 44: tapped = false
            default: countsTCP = false
            }
        }
        extensionHeaders: while hops < 16 {
            hops += 1
            switch next {
            case 0, 43, 60:
                guard let nextHeader = payload.u8(0), let units = payload.u8(1), payload.count >= (Int(units) + 1) * 8
                else {
                    tapped = false
                    break extensionHeaders
                }
                if next == 43, let routed = Self.routingFinalDestination(payload.prefix((Int(units) + 1) * 8)) {
                    finalDestination = routed
                }
                next = nextHeader
                payload = payload.suffix(from: (Int(units) + 1) * 8)
            case 44:
                guard let nextHeader = payload.u8(0), let offsetField = payload.u16(2), payload.count >= 8 else {
                    tapped = false
                    break extensionHeaders
                }
                next = nextHeader
                payload = payload.suffix(from: 8)
                if offsetField >> 3 != 0 { isFirstFragment = false }
                break extensionHeaders
            case 51, 135, 139, 140:
                tapped = false
                break extensionHeaders
            default:
                break extensionHeaders
            }
        }
        let isOuter = summary.flow == nil
        if isFirstFragment && tapped {
            summary.events.append(
                ConversationEvent(
                    kind: .ipv6, source: sourceAddress, destination: destinationAddress, sourcePort: 0,
                    destinationPort: 0, tcpFlags: 0))
        }
        if isOuter {
            summary.flow = FlowKey(source: sourceAddress, destination: destinationAddress, ipProtocol: next)
            if extent == .flowAddresses { return }
        }
        guard isFirstFragment, tapped, ![0, 43, 44, 60, 51, 135, 139, 140].contains(next) else { return }
        transport(
            next, payload, source: sourceAddress, destination: finalDestination, isOuter: isOuter, depth: depth,
            countsTCP: countsTCP)
    }

    /// Whether a payload-length-0 datagram starts with a hop-by-hop header holding a jumbo
    /// payload option (type 0xC2) above 65,535.
    private static func jumboPayloadFits(_ payload: ByteView, next: UInt8) -> Bool {
        guard next == 0, let units = payload.u8(1) else { return false }
        let end = (Int(units) + 1) * 8
        var position = 2
        while position + 2 <= end {
            guard let type = payload.u8(position) else { return false }
            if type == 0 {
                position += 1
                continue
            }
            guard let length = payload.u8(position + 1) else { return false }
            if type == 0xC2, length == 4, let jumbo = payload.u32(position + 2) { return jumbo > 65_535 }
            position += 2 + Int(length)
        }
        return false
    }

    /// The final destination a routing header names (type 0: the last address; type 2: the home
    /// address; type 4, segment routing: segment 0), when segments are left.
    private static func routingFinalDestination(_ header: ByteView) -> IPAddress? {
        guard let units = header.u8(1), let type = header.u8(2), let segmentsLeft = header.u8(3), segmentsLeft > 0
        else { return nil }
        let addresses = Int(units) / 2
        let index: Int
        switch type {
        case 0: index = addresses - 1
        case 2: index = 0
        case 4: index = 0
        default: return nil
        }
        guard addresses > 0, index >= 0 else { return nil }
        let at = 8 + index * 16
        guard let a = header.u32(at), let b = header.u32(at + 4), let c = header.u32(at + 8),
            let d = header.u32(at + 12)
        else { return nil }
        return IPAddress(ipv6High: UInt64(a) << 32 | UInt64(b), low: UInt64(c) << 32 | UInt64(d))
    }

    // MARK: Transport layer

    private mutating func transport(
        _ ipProtocol: UInt8, _ payload: ByteView, source: IPAddress, destination: IPAddress, isOuter: Bool, depth: Int,
        countsTCP: Bool = true
    ) {
        switch ipProtocol {
        case 6:
            enterTransport(.tcp)
            guard let sourcePort = payload.u16(0), let destinationPort = payload.u16(2),
                let offsetByte = payload.u8(12), let flags = payload.u8(13)
            else { return }
            let headerLength = Int(offsetByte >> 4) * 4
            guard headerLength >= 20, payload.count >= headerLength, countsTCP else { return }
            summary.events.append(
                ConversationEvent(
                    kind: .tcp, source: source, destination: destination, sourcePort: sourcePort,
                    destinationPort: destinationPort, tcpFlags: flags))
            if isOuter {
                summary.flow?.sourcePort = sourcePort
                summary.flow?.destinationPort = destinationPort
                summary.tcpFlags = flags
            }
        case 17:
            enterTransport(.udp)
            // A UDP length below 8 is bogus to tshark (no conversation event).
            guard let sourcePort = payload.u16(0), let destinationPort = payload.u16(2), payload.count >= 8,
                let length = payload.u16(4), length >= 8
            else { return }
            summary.events.append(
                ConversationEvent(
                    kind: .udp, source: source, destination: destination, sourcePort: sourcePort,
                    destinationPort: destinationPort, tcpFlags: 0))
            if isOuter {
                summary.flow?.sourcePort = sourcePort
                summary.flow?.destinationPort = destinationPort
            }
        case 1, 58:
            enterTransport(ipProtocol == 1 ? .icmp : .icmpv6)
            if isOuter { summary.icmpTypeCode = payload.u16(0) }
        case 4: ipv4(payload, depth: depth + 1)
        case 41: ipv6(payload, depth: depth + 1)
        case 143:
            // Ethernet carried in IPv6 (segment routing, RFC 8986).
            guard let type = payload.u16(12) else { return }
            etherType(type, payload.suffix(from: 14), depth: depth + 1)
        default: return
        }
    }
}
