// IPFIXExporter: sends flow records to an IPFIX collector over UDP (RFC 7011 §10.3), as
// softflowd and nfprobe do at the end of their flows — here, at the end of a replay or capture.
//
// Messages fit one datagram (1,400 bytes by default, under an Ethernet path's MTU) and each carries
// the templates, so a lost datagram or a late collector loses only its own records. Sends are
// paced in bursts (32 datagrams, then 1 ms) so a collector on the same host is not overrun
// (unpaced, nfcapd here lost 4–5% of 100,000 records). A failed send is counted and the export goes
// on. One connected socket, used by the calling thread only.

#if canImport(Glibc)
    import Glibc
#endif

/// Sends flow records as IPFIX over UDP.
public struct IPFIXExporter: ~Copyable, Sendable {
    /// The collector as given (`host:port` or `[ipv6]:port`).
    public let destination: String
    private let socket: Int32
    private var encoder: IPFIXEncoder

    /// Datagrams sent before pausing.
    static let burst = 32

    /// Resolves `destination` (`host:port`, `[ipv6]:port`; a host name or a numeric address) and
    /// connects a UDP socket to it. Messages are at most `maximumMessageSize` bytes.
    public init(destination: String, maximumMessageSize: Int = 1_400) throws(IPFIXExportError) {
        guard let (host, port) = Self.split(destination) else {
            throw IPFIXExportError("\(destination): expected HOST:PORT or [IPV6]:PORT")
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, port, &hints, &found)
        guard status == 0, let first = found else {
            throw IPFIXExportError("\(destination): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let descriptor = Glibc.socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard descriptor >= 0 else { throw IPFIXExportError("\(destination): socket: \(Self.lastError)") }
        guard connect(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let message = Self.lastError
            close(descriptor)
            throw IPFIXExportError("\(destination): connect: \(message)")
        }
        self.destination = destination
        socket = descriptor
        encoder = IPFIXEncoder(maximumMessageSize: maximumMessageSize, templates: .everyMessage)
    }

    deinit { close(socket) }

    /// Sends `flows`, carrying on past failed sends (a collector that is restarting refuses a
    /// datagram or two: the kernel reports its ICMP error on the next send, which then fails).
    public mutating func export(_ flows: some Sequence<FlowRecord>, exportTime: UInt32) -> IPFIXExportSummary {
        let (socket, destination) = (socket, destination)
        var summary = IPFIXExportSummary()
        encoder.encode(flows, exportTime: exportTime) { message, records in
            let attempts = summary.datagrams + summary.failedDatagrams
            if attempts > 0, attempts % Self.burst == 0 { usleep(1_000) }
            let count = message.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, 0) }
            if count == message.count {
                summary.datagrams += 1
                summary.records += records
            } else {
                summary.failedDatagrams += 1
                summary.failedRecords += records
                if summary.firstError == nil { summary.firstError = "\(destination): send: \(Self.lastError)" }
            }
        }
        return summary
    }

    /// `host:port` or `[host]:port` split in two; nil when malformed.
    static func split(_ text: String) -> (host: String, port: String)? {
        let host: Substring
        let rest: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            rest = text[text.index(after: close)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            rest = text[colon...]
            guard !host.contains(":") else { return nil }  // a bare IPv6 address needs brackets
        }
        guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()), port > 0, !host.isEmpty else { return nil }
        return (String(host), String(port))
    }

    private static var lastError: String { String(cString: strerror(errno)) }
}

/// What an export did.
public struct IPFIXExportSummary: Sendable {
    /// Datagrams sent.
    public var datagrams = 0
    /// Flow records in them.
    public var records = 0
    /// Datagrams whose send failed.
    public var failedDatagrams = 0
    /// Flow records in the datagrams whose send failed.
    public var failedRecords = 0
    /// The first failure, naming the collector.
    public var firstError: String?
}

/// Why a collector cannot be exported to.
public struct IPFIXExportError: Error, CustomStringConvertible {
    /// What went wrong, naming the collector.
    public let description: String
    init(_ description: String) { self.description = description }
}
