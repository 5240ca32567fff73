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

/// Runs `work(0)` … `work(parts - 1)` at once, part 0 on the caller's thread and every other on a
/// thread of its own (or on the caller's after part 0, when the system has no thread to give);
/// returns the results in part order. For work split into parts that share nothing.
func inParallel<Result>(_ parts: Int, _ work: @escaping @Sendable (Int) -> Result) -> [Result] {
    guard parts > 0 else { return [] }
    let slots = (1..<parts).map { _ in ResultSlot<Result>() }
    let threads = slots.enumerated().map { offset, slot in ThreadHandle { slot.value = work(offset + 1) } }
    var results = [work(0)]
    for (offset, thread) in threads.enumerated() {
        thread.join()
        results.append(slots[offset].value ?? work(offset + 1))
    }
    return results
}

/// A value a thread leaves for the one that joins it: written by the thread before it ends, read
/// after `join` (which orders the two), never both at once.
private final class ResultSlot<Value>: @unchecked Sendable {  // unchecked: ordered by the join, as said
    var value: Value?
}
