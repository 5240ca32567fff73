// CaptureReady: lets a live-capture test's sender start its schedule when the capture's sockets
// receive (`Replay.run(interface:…, ready:)`), not at a fixed time after the test started: on a
// loaded 2-CPU machine the set-up of two fanout sockets and their rings outlasted a fixed 300 ms,
// and the first packets went out before anything captured them (the capture's `duration` counts
// from after the set-up). Tests running `netisr capture` wait for its "listening on" line instead
// (`Shell.waitUntil`).

import Synchronization

/// Set once by the capture's `ready` callback; senders wait for it.
public final class CaptureReady: Sendable {
    private let isReady = Atomic<Bool>(false)

    /// A flag not yet set.
    public init() {}

    /// Marks the capture ready (call it from the capture's `ready` callback).
    public func signal() { isReady.store(true, ordering: .releasing) }

    /// Waits until the capture is ready, or `limit` seconds have passed (the test's expectations
    /// then fail instead of the test hanging); whether it is ready.
    @discardableResult
    public func wait(limit seconds: Double = 30) -> Bool {
        eventually(seconds: seconds) { isReady.load(ordering: .acquiring) }
    }
}
