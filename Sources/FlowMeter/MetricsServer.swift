// MetricsServer: a minimal HTTP/1.1 server for Prometheus scrapes, on its own thread. It answers
// `GET /metrics` with what `render` returns and 404 otherwise, one request per connection, and
// stops when asked. It binds to the address given (loopback by default), never anything wider.

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Serves `/metrics` until `stop()`.
public final class MetricsServer: Sendable {
    private let listener: Int32
    private let stopping = StopFlag()
    private let thread: ThreadHandle
    /// The port it listens on (useful when 0 was asked for).
    public let port: UInt16

    /// Listens on `host:port` (IPv4 dotted quad; default loopback) and serves `render()`.
    public init(host: String = "127.0.0.1", port: UInt16, render: @escaping @Sendable () -> String) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw MetricsError("cannot open a socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(descriptor)
            throw MetricsError("--metrics needs an IPv4 address, not \(host)")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(descriptor)
            throw MetricsError("cannot listen on \(host):\(port): \(message)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.port = UInt16(bigEndian: actual.sin_port)
        listener = descriptor
        let stopping = stopping
        thread = ThreadHandle { [descriptor] in
            Self.serve(descriptor, stopping: stopping, render: render)
        }
    }

    /// Stops serving and closes the socket.
    public func stop() {
        stopping.value.store(true, ordering: .relaxed)
        thread.join()
        close(listener)
    }

    private static func serve(_ listener: Int32, stopping: StopFlag, render: () -> String) {
        while !stopping.value.load(ordering: .relaxed) {
            var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            var request = [UInt8](repeating: 0, count: 2_048)
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let got = recv(client, &request, request.count, 0)
            let line = got > 0 ? String(decoding: request[0..<got].prefix { $0 != 13 && $0 != 10 }, as: UTF8.self) : ""
            let response: String
            if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
                let body = render()
                response =
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\n"
                    + "Connection: close\r\n\r\n" + body
            } else {
                response = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            let bytes = Array(response.utf8)
            var sent = 0
            while sent < bytes.count {
                let result = bytes.withUnsafeBytes {
                    send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
                }
                if result <= 0 { break }
                sent += result
            }
            close(client)
        }
    }
}

/// A flag one thread sets and another polls.
final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// The metrics endpoint could not start.
public struct MetricsError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    init(_ description: String) { self.description = description }
}
