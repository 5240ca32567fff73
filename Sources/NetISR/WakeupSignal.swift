// WakeupSignal: where an idle worker sleeps until a producer has work for it.
//
// A pthread mutex and condition variable, used only on the slow path (falling asleep, waking
// up). The no-lost-wake-up rule lives in Workstream: the sleeper publishes `asleep` and re-checks
// its pending bits before waiting, under this mutex; a producer publishes its pending bit, then
// signals under the mutex if it sees `asleep`.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

final class WakeupSignal: @unchecked Sendable {  // unchecked: the pthread objects synchronize themselves
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Sleeps while `shouldSleep()` (evaluated under the mutex) is true, or until signalled.
    func wait(while shouldSleep: () -> Bool) {
        pthread_mutex_lock(mutex)
        if shouldSleep() {
            pthread_cond_wait(condition, mutex)
        }
        pthread_mutex_unlock(mutex)
    }

    /// Wakes the sleeper, if any.
    func signal() {
        pthread_mutex_lock(mutex)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }
}
