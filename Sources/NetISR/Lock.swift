// Lock: the engine's mutex for control state and for the global "Giant" lock.
//
// Why not `Synchronization.Mutex`: on Linux its futex word is driven by code inside the
// standard library, which ThreadSanitizer does not instrument, so TSan cannot see the
// happens-before edges it creates and reports every critical section as a race — including
// state in users' handlers that the global lock serializes. A pthread mutex is intercepted by
// TSan and costs the same uncontended. Revisit when Mutex is TSan-visible.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A mutex protecting a value, built on a pthread mutex.
final class Lock<Value>: @unchecked Sendable {  // unchecked: `value` is only touched under `mutex`
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    init(_ initial: Value) {
        value = .allocate(capacity: 1)
        value.initialize(to: initial)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        value.deinitialize(count: 1)
        value.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
