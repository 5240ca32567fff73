// EmbeddedNetISR: a deterministic engine for tests, in the spirit of SwiftNIO's
// EmbeddedEventLoop. It is a real `NetISR` (same registration, dispatch, counters and report)
// whose workstreams have no threads: they advance only when the test calls `run…`, on the
// test's thread. Direct and hybrid dispatch still run handlers in the caller, exactly as in a
// threaded engine; a hybrid packet runs directly only if its workstream has nothing pending.

import NetISR

/// A `NetISR` whose workstreams advance only when the test says so.
///
/// ```swift
/// let embedded = try EmbeddedNetISR(workstreamCount: 2)
/// try embedded.engine.register(.perPacket(name: "ip", number: 1) { packet, _ in /* … */ })
/// embedded.engine.dispatchPolicy = .deferred
/// embedded.engine.dispatch(1, Packet())
/// embedded.runUntilIdle()
/// ```
///
/// Lossless dispatch (`whenFull: .wait`) cannot wait here, as nothing would make room: a full
/// queue drops and counts the packet instead.
///
/// Thread-safety: use it from one thread.
public final class EmbeddedNetISR: Sendable {
    /// The engine: register, dispatch and observe through it as with a threaded one.
    public let engine: NetISR

    /// Makes a started engine with `workstreamCount` workstreams and otherwise `configuration`.
    public init(workstreamCount: Int = 1, configuration: NetISRConfiguration = NetISRConfiguration())
        throws(NetISRError)
    {
        var configuration = configuration
        configuration.workstreamCount = workstreamCount
        engine = try NetISR(manualConfiguration: configuration)
        try engine.start()
    }

    /// Runs one pass of a workstream: every pending protocol, up to one quantum each.
    ///
    /// - Returns: whether there was anything to do.
    @discardableResult
    public func runPass(workstream: Int = 0) -> Bool {
        engine.runManualPass(workstream: workstream)
    }

    /// Runs passes on every workstream until none has anything pending.
    ///
    /// - Returns: how many passes did work.
    @discardableResult
    public func runUntilIdle() -> Int {
        var passes = 0
        var progressed = true
        while progressed {
            progressed = false
            for workstream in 0..<engine.workstreamCount where runPass(workstream: workstream) {
                passes += 1
                progressed = true
            }
        }
        return passes
    }
}
