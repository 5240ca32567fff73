// The Prometheus endpoint: the exposition's content, the server's HTTP behaviour (no privilege
// needed: it listens on loopback), and a scrape during a live capture (root only).

import FlowMeter
import NetISR
import NetISRTesting
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

enum HTTP {
    /// GETs `path` from 127.0.0.1:`port`; the whole response, or "" on failure.
    static func get(_ path: String, port: UInt16) -> String {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        let connected = Loopback.withAddress(port: port) { connect(descriptor, $0, $1) }
        guard connected == 0 else { return "" }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let got = recv(descriptor, &chunk, chunk.count, 0)
            if got <= 0 { break }
            response += chunk[0..<got]
        }
        return String(decoding: response, as: UTF8.self)
    }
}

@Suite struct MetricsTests {
    @Test func expositionHasEveryCounterPerWorkstreamAndProtocol() throws {
        let embedded = try EmbeddedNetISR(workstreamCount: 2)
        embedded.engine.dispatchPolicy = .deferred
        try embedded.engine.register(ProtocolRegistration(name: "ip", number: 1, queueLimit: 2) { _ in })
        for source in 0..<5 { embedded.engine.dispatch(1, Packet(sourceID: UInt32(source % 2))) }
        let text = PrometheusExposition.render(embedded.engine.snapshot(), kernel: (1_000, 7), frames: 5)
        #expect(text.contains("# TYPE netisr_queued_total counter\n"))
        #expect(text.contains("netisr_queued_total{workstream=\"0\",protocol=\"ip\"} 2\n"))
        #expect(text.contains("netisr_queue_drops_total{workstream=\"0\",protocol=\"ip\"} 1\n"))
        #expect(text.contains("netisr_queue_length{workstream=\"1\",protocol=\"ip\"} 2\n"))
        #expect(text.contains("netisr_drops_total{reason=\"kernel\"} 7\n"))
        #expect(text.contains("netisr_kernel_received_total 1000\n"))
        #expect(text.contains("netisr_frames_total 5\n"))
        #expect(text.split(separator: "\n").allSatisfy { $0.hasPrefix("#") || $0.split(separator: " ").count == 2 })
    }

    @Test func serverAnswersMetricsAnd404() throws {
        let calls = Atomic<Int>(0)
        let server = try MetricsServer(port: 0) {
            calls.wrappingAdd(1, ordering: .relaxed)
            return "netisr_test 1\n"
        }
        defer { server.stop() }
        let ok = HTTP.get("/metrics", port: server.port)
        #expect(ok.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(ok.contains("Content-Type: text/plain; version=0.0.4"))
        #expect(ok.hasSuffix("\r\n\r\nnetisr_test 1\n"))
        #expect(HTTP.get("/", port: server.port).hasPrefix("HTTP/1.1 404"))
        #expect(calls.load(ordering: .relaxed) == 1)
        do {
            _ = try MetricsServer(host: "0.0.0.0.0", port: 0) { "" }
            Issue.record("accepted a bad address")
        } catch {}
    }

    @Test func aLiveCaptureServesMetricsWhileItRuns() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        let port = UInt16(20_000 + getpid() % 10_000)
        final class Scrape: @unchecked Sendable { var text = "" }
        let scrape = Scrape()
        let ready = CaptureReady()
        let traffic = TestThread {
            ready.wait()
            LiveCaptureTests.sendDatagrams(100, to: port + 1, after: 200_000)
        }
        let scraper = TestThread {
            ready.wait()
            usleep(900_000)
            scrape.text = HTTP.get("/metrics", port: port)
        }
        var configuration = ReplayConfiguration()
        configuration.threads = 2
        _ = try Replay(configuration).run(interface: "lo", duration: 1.5, metrics: ("127.0.0.1", port)) { _, _ in
            ready.signal()
        }
        traffic.join()
        scraper.join()
        #expect(scrape.text.hasPrefix("HTTP/1.1 200 OK"))
        #expect(scrape.text.contains("netisr_handled_total{workstream=\"0\",protocol=\"ip\"}"))
        #expect(scrape.text.contains("netisr_queueing_delay_seconds_count{protocol=\"ip\"} "))
        #expect(scrape.text.contains("netisr_kernel_received_total "))
        #expect(HTTP.get("/metrics", port: port).isEmpty)  // stopped with the capture
    }
}
