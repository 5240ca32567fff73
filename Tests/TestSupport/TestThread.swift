// A plain joinable pthread for tests (a test's sender, producer or helper that must run on a
// real thread of its own, not in the Swift concurrency pool), the bounded wait such threads are
// met with (`eventually`), and the loopback address they send to.

#if canImport(Glibc)
    import Glibc
#endif

/// A thread running `body` from creation until `join()` returns.
///
/// Unchecked Sendable: `handle` is written once, in init, before any other thread sees the object.
public final class TestThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: @Sendable () -> Void

    /// Starts a thread running `body`.
    public init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        pthread_create(
            &handle, nil,
            { raw in
                let thread = Unmanaged<TestThread>.fromOpaque(raw!).takeRetainedValue()
                thread.body()
                return nil
            }, Unmanaged.passRetained(self).toOpaque())
    }

    /// Waits for the thread to end.
    public func join() { pthread_join(handle, nil) }
}

/// Waits (bounded, about `seconds`) until `condition` holds; whether it does. The bound is a safety
/// net against a hang, not a timing assertion.
@discardableResult
public func eventually(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    for _ in 0..<Int(seconds * 2_000) {
        if condition() { return true }
        usleep(500)
    }
    return condition()
}

/// 127.0.0.1 as a socket address.
public enum Loopback {
    /// Calls `body` with 127.0.0.1:`port` as a `sockaddr` and its length.
    public static func withAddress<R>(port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
}
