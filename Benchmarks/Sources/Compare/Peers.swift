// Small pthread-based helpers for the peers: a joinable thread and the mutex-protected Deque.

import DequeModule

#if canImport(Glibc)
    import Glibc
#endif

final class PeerThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        pthread_create(
            &handle, nil,
            { raw in
                let thread = Unmanaged<PeerThread>.fromOpaque(raw!).takeRetainedValue()
                thread.body()
                return nil
            }, Unmanaged.passRetained(self).toOpaque())
    }

    func join() { pthread_join(handle, nil) }
}

final class LockedDeque: @unchecked Sendable {  // unchecked: `items` only under `mutex`
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var items = Deque<Int>()
    private var consumerWaiting = false

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    func append(_ range: Range<Int>) {
        pthread_mutex_lock(mutex)
        items.append(contentsOf: range)
        let wake = consumerWaiting
        pthread_mutex_unlock(mutex)
        if wake { pthread_cond_signal(condition) }
    }

    func takeAll(into local: inout Deque<Int>) {
        pthread_mutex_lock(mutex)
        while items.isEmpty {
            consumerWaiting = true
            pthread_cond_wait(condition, mutex)
            consumerWaiting = false
        }
        swap(&items, &local)
        pthread_mutex_unlock(mutex)
    }
}
