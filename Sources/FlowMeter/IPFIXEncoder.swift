// IPFIXEncoder: flow records as IP Flow Information Export messages (RFC 7011), the format
// NetFlow collectors (nfcapd, ntopng, Elastic, …) take, for files (RFC 5655: messages back to
// back) and for collectors over UDP (IPFIXExporter).
//
// A message is the 16-byte header, the template set when asked for (one template per address
// family), then data sets. Each record is a biflow (RFC 5103): the initiator's counters in the
// standard elements, the responder's in the reverse elements (enterprise 29305). Everything is in
// network byte order. Pure value code: no I/O, no shared state.

import PacketWire

/// Encodes flow records as IPFIX messages.
public struct IPFIXEncoder: Sendable {
    /// Which messages carry the template set.
    public enum TemplatePlacement: Sendable {
        /// Only the first message (a file: a reader sees it before any data).
        case firstMessage
        /// Every message (UDP: a datagram can be lost, a collector can start late).
        case everyMessage
    }

    /// The template id of IPv4 flow records.
    public static let ipv4TemplateID: UInt16 = 256
    /// The template id of IPv6 flow records.
    public static let ipv6TemplateID: UInt16 = 257
    /// The enterprise number of RFC 5103's reverse information elements.
    public static let reversePEN: UInt32 = 29_305
    /// The largest message IPFIX allows (its length field is 16 bits).
    public static let largestMessage = 65_535

    /// The observation domain written in every message header.
    public var observationDomain: UInt32
    /// Messages are at most this long (bytes); at least one record and the templates always fit.
    public let maximumMessageSize: Int
    /// Where the templates go.
    public var templates: TemplatePlacement
    /// Data records encoded so far (modulo 2^32): the next message's sequence number.
    public private(set) var sequenceNumber: UInt32 = 0
    private var sentTemplates = false

    /// An encoder for messages of at most `maximumMessageSize` bytes (clamped to what one record
    /// with the templates needs and to IPFIX's 65,535).
    public init(observationDomain: UInt32 = 0, maximumMessageSize: Int = largestMessage, templates: TemplatePlacement) {
        self.observationDomain = observationDomain
        let smallest = Self.headerLength + Self.templateSet.count + 4 + Self.recordLength(ipv6: true)
        self.maximumMessageSize = min(max(maximumMessageSize, smallest), Self.largestMessage)
        self.templates = templates
    }

    /// Encodes `flows` in order, handing each finished message and its number of records to `emit`
    /// (with no flows and no templates sent yet, one message of templates alone). `exportTime` is the
    /// headers' export time (seconds since the epoch). A message ends when the next record would
    /// not fit.
    public mutating func encode(
        _ flows: some Sequence<FlowRecord>, exportTime: UInt32,
        emit: (_ message: [UInt8], _ records: Int) throws -> Void
    ) rethrows {
        var message = Message()
        for flow in flows {
            let ipv6 = flow.key.source.isIPv6
            let need = Self.recordLength(ipv6: ipv6) + (message.openSet == templateID(ipv6) ? 0 : 4)
            if message.isStarted, message.bytes.count + need > maximumMessageSize {
                let records = message.records
                try emit(finish(&message, exportTime: exportTime), records)
            }
            if !message.isStarted { start(&message) }
            message.appendRecord(flow, templateID: templateID(ipv6))
        }
        // No records at all: a message of templates alone, so a file is still an IPFIX file.
        if !message.isStarted && !sentTemplates { start(&message) }
        if message.isStarted {
            let records = message.records
            try emit(finish(&message, exportTime: exportTime), records)
        }
    }

    private func templateID(_ ipv6: Bool) -> UInt16 { ipv6 ? Self.ipv6TemplateID : Self.ipv4TemplateID }

    private mutating func start(_ message: inout Message) {
        message.bytes = [UInt8](repeating: 0, count: Self.headerLength)
        message.bytes.reserveCapacity(maximumMessageSize)
        message.isStarted = true
        if templates == .everyMessage || !sentTemplates {
            message.bytes += Self.templateSet
            sentTemplates = true
        }
    }

    private mutating func finish(_ message: inout Message, exportTime: UInt32) -> [UInt8] {
        message.closeSet()
        var bytes = message.bytes
        bytes.withUnsafeMutableBytes { header in
            header.storeBytes(of: UInt16(10).bigEndian, toByteOffset: 0, as: UInt16.self)
            header.storeBytes(of: UInt16(header.count).bigEndian, toByteOffset: 2, as: UInt16.self)
            header.storeBytes(of: exportTime.bigEndian, toByteOffset: 4, as: UInt32.self)
            header.storeBytes(of: sequenceNumber.bigEndian, toByteOffset: 8, as: UInt32.self)
            header.storeBytes(of: observationDomain.bigEndian, toByteOffset: 12, as: UInt32.self)
        }
        sequenceNumber &+= UInt32(truncatingIfNeeded: message.records)
        message = Message()
        return bytes
    }

    // MARK: Layout

    static let headerLength = 16

    /// One field of the templates: element id, length, and whether it is a reverse element.
    struct Field {
        var element: UInt16
        var length: Int
        var reverse = false
    }

    /// The fields of a record, in order.
    static func fields(ipv6: Bool) -> [Field] {
        [
            Field(element: 152, length: 8),  // flowStartMilliseconds
            Field(element: 153, length: 8),  // flowEndMilliseconds
            Field(element: ipv6 ? 27 : 8, length: ipv6 ? 16 : 4),  // source IPv6 / IPv4 address
            Field(element: ipv6 ? 28 : 12, length: ipv6 ? 16 : 4),  // destination IPv6 / IPv4 address
            Field(element: 7, length: 2),  // sourceTransportPort
            Field(element: 11, length: 2),  // destinationTransportPort
            Field(element: 4, length: 1),  // protocolIdentifier
            // reverseTcpControlBits before tcpControlBits: nfdump 1.7 keeps one flags field and
            // the element that comes later in the record wins, so this way it shows the initiator's.
            Field(element: 6, length: 2, reverse: true),  // reverseTcpControlBits
            Field(element: 6, length: 2),  // tcpControlBits (the initiator's)
            Field(element: 58, length: 2),  // vlanId (0: untagged)
            Field(element: 2, length: 8),  // packetDeltaCount
            Field(element: 1, length: 8),  // octetDeltaCount
            Field(element: 2, length: 8, reverse: true),  // reversePacketDeltaCount
            Field(element: 1, length: 8, reverse: true),  // reverseOctetDeltaCount
            Field(element: 136, length: 1),  // flowEndReason
            Field(element: ipv6 ? 139 : 32, length: 2),  // icmpTypeCodeIPv6 / icmpTypeCodeIPv4 (0 if not ICMP)
        ]
    }

    /// Bytes of one data record.
    static func recordLength(ipv6: Bool) -> Int { ipv6 ? ipv6RecordLength : ipv4RecordLength }
    private static let ipv4RecordLength = fields(ipv6: false).reduce(0) { $0 + $1.length }
    private static let ipv6RecordLength = fields(ipv6: true).reduce(0) { $0 + $1.length }

    /// The template set: both templates.
    static let templateSet: [UInt8] = {
        var body: [UInt8] = []
        for ipv6 in [false, true] {
            let fields = fields(ipv6: ipv6)
            body.appendBigEndian(ipv6 ? ipv6TemplateID : ipv4TemplateID)
            body.appendBigEndian(UInt16(fields.count))
            for field in fields {
                body.appendBigEndian(field.reverse ? field.element | 0x8000 : field.element)
                body.appendBigEndian(UInt16(field.length))
                if field.reverse { body.appendBigEndian(reversePEN) }
            }
        }
        var set: [UInt8] = []
        set.appendBigEndian(UInt16(2))
        set.appendBigEndian(UInt16(4 + body.count))
        return set + body
    }()

    /// flowEndReason: 1 or 2 (idle or active timeout) when a timeout ended the record, else 3
    /// (end of flow detected) after a FIN or RST, else 4 (forced end: the capture ended).
    static func endReason(_ flow: FlowRecord) -> UInt8 {
        switch flow.expiry {
        case .idleTimeout: 1
        case .activeTimeout: 2
        case .endOfFlow: 3
        case .tableFull: 5
        case .none: flow.tcpFlags & 0x05 != 0 ? 3 : 4
        }
    }

    /// A message being built.
    struct Message {
        var bytes: [UInt8] = []
        var isStarted = false
        var records = 0
        /// The template id of the data set being filled and where its header is.
        var openSet: UInt16?
        var setStart = 0

        mutating func appendRecord(_ flow: FlowRecord, templateID: UInt16) {
            if openSet != templateID {
                closeSet()
                openSet = templateID
                setStart = bytes.count
                bytes.appendBigEndian(templateID)
                bytes.appendBigEndian(UInt16(0))  // length, set by closeSet
            }
            let key = flow.key
            bytes.appendBigEndian(flow.firstTimestamp / 1_000_000)
            bytes.appendBigEndian(flow.lastTimestamp / 1_000_000)
            appendAddress(key.source)
            appendAddress(key.destination)
            bytes.appendBigEndian(key.sourcePort)
            // An ICMP flow's type and code also go in the destination port, as NetFlow has them.
            bytes.appendBigEndian(flow.icmpTypeCode ?? key.destinationPort)
            bytes.append(key.ipProtocol)
            bytes.appendBigEndian(UInt16(flow.tcpFlagsReverse))
            bytes.appendBigEndian(UInt16(flow.tcpFlagsForward))
            bytes.appendBigEndian(flow.vlan ?? 0)
            bytes.appendBigEndian(UInt64(flow.packetsForward))
            bytes.appendBigEndian(UInt64(flow.bytesForward))
            bytes.appendBigEndian(UInt64(flow.packetsReverse))
            bytes.appendBigEndian(UInt64(flow.bytesReverse))
            bytes.append(IPFIXEncoder.endReason(flow))
            bytes.appendBigEndian(flow.icmpTypeCode ?? 0)
            records += 1
        }

        mutating func appendAddress(_ address: IPAddress) {
            if address.isIPv6 {
                bytes.appendBigEndian(address.high)
                bytes.appendBigEndian(address.low)
            } else {
                bytes.appendBigEndian(UInt32(truncatingIfNeeded: address.low))
            }
        }

        mutating func closeSet() {
            guard openSet != nil else { return }
            let length = UInt16(bytes.count - setStart)
            bytes[setStart + 2] = UInt8(length >> 8)
            bytes[setStart + 3] = UInt8(length & 0xFF)
            openSet = nil
        }
    }
}

extension [UInt8] {
    /// Appends `value` in network byte order.
    @inline(__always)
    mutating func appendBigEndian<Value: FixedWidthInteger>(_ value: Value) {
        var shift = Value.bitWidth
        while shift > 0 {
            shift -= 8
            append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }
}
