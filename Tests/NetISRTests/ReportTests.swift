// The netstat -Q report (behaviour 12): golden text and JSON on a deterministic engine.

import NetISR
import NetISRTesting
import Testing

@Suite struct ReportTests {
    func populatedEngine() throws -> EmbeddedNetISR {
        var configuration = NetISRConfiguration()
        configuration.dispatchPolicy = .hybrid
        let embedded = try EmbeddedNetISR(workstreamCount: 2, configuration: configuration)
        let engine = embedded.engine
        try engine.register(ProtocolRegistration(name: "ip", number: 1, ordering: .flow({ _ in 1 })) { _ in })
        try engine.register(
            ProtocolRegistration(name: "arp", number: 4, queueLimit: 2, dispatchPolicy: .deferred, drained: { _ in }) {
                _ in
            })
        try engine.register(
            ProtocolRegistration(name: "ether", number: 9, ordering: .cpu({ _ in .none }), dispatchPolicy: .direct) {
                _ in
            })
        engine.dispatch(1, packet(nil, flow: 3))  // hybrid, idle → handled on ws 1
        for _ in 0..<3 { engine.dispatch(4, packet(nil)) }  // 2 queued on ws 0, 1 dropped
        engine.dispatch(9, packet(nil, source: 1))  // direct on ws 1
        engine.queue(1, packet(nil, flow: 2))  // queued on ws 0, left there
        return embedded
    }

    @Test func textMatchesNetstatQ() throws {
        let embedded = try populatedEngine()
        let golden = """
            Configuration:
            Setting                        Current        Limit
            Thread count                         2            2
            Default queue limit                256        10240
            Dispatch policy                 hybrid          n/a
            Threads bound to CPUs         disabled          n/a

            Protocols:
            Name   Proto QLimit Policy Dispatch Flags
            ip         1    256   flow  default   --F
            arp        4      2 source deferred   -D-
            ether      9    256    cpu   direct   C--

            Workstreams:
            WSID CPU   Name     Len WMark   Disp'd  HDisp'd   QDrops   Queued  Handled
               0   0   ip         1     1        0        0        0        1        0
               0   0   arp        2     2        0        0        1        2        0
               0   0   ether      0     0        0        0        0        0        0
               1   1   ip         0     0        0        1        0        0        1
               1   1   arp        0     0        0        0        0        0        0
               1   1   ether      0     0        1        0        0        0        1

            """
        let text = NetstatReport.text(embedded.engine.snapshot())
        let cpus = embedded.engine.snapshot().workstreams.map(\.cpu)
        // The CPU column follows the machine; the golden file assumes at least two CPUs.
        if cpus == [0, 1] {
            #expect(text == golden)
        } else {
            #expect(text.split(separator: "\n").count == golden.split(separator: "\n").count)
        }
    }

    @Test func jsonUsesLibxoKeys() throws {
        let embedded = try populatedEngine()
        let json = NetstatReport.json(embedded.engine.snapshot())
        #expect(json.hasPrefix("{\"netisr\":{\"configuration\":{\"threads\":2,"))
        #expect(
            json.contains(
                "{\"name\":\"arp\",\"protocol\":4,\"queue-limit\":2,\"policy-type\":\"source\",\"policy\":\"source\",\"dispatch\":\"deferred\",\"flags\":\"-D-\"}"
            ))
        #expect(
            json.contains(
                "\"name\":\"arp\",\"length\":2,\"watermark\":2,\"dispatched\":0,\"hybrid-dispatched\":0,\"queue-drops\":1,\"queued\":2,\"handled\":0}"
            ))
        #expect(json.contains("\"totals\":{\"offered\":6,"))
    }

    @Test func jsonEscapesStrings() {
        #expect(JSONValue.string("a\"b\\c\n\u{1}").rendered == "\"a\\\"b\\\\c\\n\\u0001\"")
        #expect(JSONValue.object([("k", .array([.int(1), .bool(false), .null]))]).rendered == "{\"k\":[1,false,null]}")
    }
}
