// ThreadHandle: a plain joinable pthread, for the work FlowMeter runs beside the engine's own
// workers (the metrics server, a live capture's readers and flow export, the fold after a replay).

#if canImport(Glibc)
    import Glibc
#endif

/// A joinable pthread.
final class ThreadHandle: @unchecked Sendable {  // unchecked: `handle`, `started` are written once, in init
    private var handle = pthread_t()
    private let body: @Sendable () -> Void
    /// Whether the thread started (false if the system had no thread to give: `body` never runs).
    private(set) var started = false

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let context = Unmanaged.passRetained(self)
        let status = pthread_create(
            &handle, nil,
            { raw in
                let thread = Unmanaged<ThreadHandle>.fromOpaque(raw!).takeRetainedValue()
                thread.body()
                return nil
            }, context.toOpaque())
        started = status == 0
        if !started { context.release() }
    }

    /// Waits for the thread to end (returns at once if it never started).
    func join() { if started { pthread_join(handle, nil) } }
}

/// A value a thread leaves for the one that joins it: written by the thread before it ends, read
/// after `join` (which orders the two), never both at once.
final class ResultSlot<Value>: @unchecked Sendable {  // unchecked: ordered by the join, as said
    var value: Value?
}
