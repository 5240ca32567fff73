// A replay's engine goes when its replay is done: nothing it registered keeps it alive (its
// handlers are kept by the engine itself), so repeated replays in one process do not pile up
// engines, rings and tables.

import NetISR
import Testing

@testable import FlowMeter

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ReplayLifetimeTests {
    @Test(arguments: [DispatchPolicy.deferred, .direct])
    func theEngineGoesWithItsSession(dispatch: DispatchPolicy) throws {
        let path = try SynthCapture.write(packets: 2_000, flows: 200, seed: 31, format: .pcap(nanosecond: false))
        defer { unlink(path) }
        var configuration = ReplayConfiguration()
        configuration.threads = 2
        configuration.dispatch = dispatch
        weak var engine: NetISR?
        weak var accounts: ReplayAccounts?
        do {
            let replay = Replay(configuration)
            let session = try Replay.Session(configuration)
            (engine, accounts) = (session.engine, session.accounts)
            var state = Replay.ReaderState(map: session.engine.workstreamMap, sourceIsFlow: true)
            try replay.replay(path, index: 0, session: session, state: &state)
            let result = session.finish(errors: [], kernelDrops: nil, cancelled: false)
            #expect(result.frames == 2_000)
        }
        #expect(engine == nil, "the engine outlived its replay")
        #expect(accounts == nil, "the accounts outlived their replay")
    }
}
