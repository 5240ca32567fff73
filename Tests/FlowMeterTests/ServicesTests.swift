// The report's top services: TCP and UDP conversations summed by the responder's port (B, the side
// that did not send first), TCP and UDP apart; every conversation in exactly one service; the
// top list ordered by bytes.

import PacketWire
import TestSupport
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ServicesTests {
    @Test func conversationsSumIntoTheirRespondersPorts() throws {
        let path = try SynthCapture.write(packets: 20_000, flows: 800, seed: 77, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        let result = try Replay().run(files: [path])
        let services = ReplayReport.services(result)
        for kind in [ConversationKind.tcp, .udp] {
            let rows = result.conversations[kind, default: []]
            let ours = services.filter { $0.kind == kind }
            // Each port's sums, recounted from the rows with that port on B.
            for service in ours {
                let matching = rows.filter { $0.portB == service.port }
                #expect(service.conversations == matching.count)
                #expect(service.frames == matching.reduce(0) { $0 + $1.frames })
                #expect(service.bytes == matching.reduce(0) { $0 + $1.bytes })
            }
            #expect(Set(ours.map(\.port)) == Set(rows.map(\.portB)) && Set(ours.map(\.port)).count == ours.count)
            #expect(ours.reduce(0) { $0 + $1.conversations } == rows.count)
        }
        // The report lists as many as asked, most bytes first.
        let text = ReplayReport.servicesText(result, 5)
        let listed = text.split(separator: "\n").dropFirst(2).map { $0.split(separator: " ") }
        #expect(listed.count == min(5, services.count))
        let bytes = listed.compactMap { Int($0.last ?? "") }
        #expect(bytes == bytes.sorted(by: >) && bytes.first == services.map(\.bytes).max())
        #expect(ReplayReport.text(result, topConversations: 5).contains(text))
    }
}
