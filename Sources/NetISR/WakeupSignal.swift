// WakeupSignal: where an idle worker sleeps until a producer has work for it, and where a
// lossless producer sleeps until a worker has made room in a full queue.
//
// A pthread mutex and condition variable (on the monotonic clock), used only on the slow path
// (falling asleep, waking up). The no-lost-wake-up rules live with the users: Workstream (the
// sleeper publishes `asleep` and re-checks its pending bits under this mutex; a producer
// publishes its pending bit, then signals under the mutex if it sees `asleep`) and PacketRing
// (a producer counts itself in `roomWaiters` and re-checks for room under this mutex; the
// consumer frees slots, then broadcasts if it sees a waiter).

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
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
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

    /// Sleeps while `shouldSleep()` (evaluated under the mutex) is true, until signalled or
    /// `nanoseconds` have passed.
    func wait(atMost nanoseconds: Int, while shouldSleep: () -> Bool) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let total = Int(deadline.tv_nsec) + nanoseconds
        deadline.tv_sec += total / 1_000_000_000
        deadline.tv_nsec = total % 1_000_000_000
        pthread_mutex_lock(mutex)
        if shouldSleep() {
            _ = pthread_cond_timedwait(condition, mutex, &deadline)
        }
        pthread_mutex_unlock(mutex)
    }

    /// Wakes the sleeper, if any.
    func signal() {
        pthread_mutex_lock(mutex)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Wakes every sleeper.
    func broadcast() {
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }
}
