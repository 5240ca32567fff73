// Helpers shared by the engine tests: packets that count their releases, handlers that record
// what they saw, and a conservation check.

import NetISR
import Synchronization
import Testing

/// Counts every packet released through it.
///
/// Every counter lives as long as the process: packets hold their owner unretained, so an owner
/// must outlive its packets, and a test's engine can outlive the test's own reference to its
/// counter — locals end in reverse order of declaration, most tests make the counter after the
/// engine, and an engine still holding packets (a producer's dispatch racing `stop`, a queue a
/// test leaves full) releases them at its deinit. A freed counter there was a use after free
/// that went unnoticed until its memory was reused (a crash in CI, `Packet.deinit` from
/// `PacketRing.deinit`).
final class ReleaseCounter: PacketOwner, @unchecked Sendable {
    private static let all = Locked<[ReleaseCounter]>([])
    let released = Atomic<Int>(0)

    override init() {
        super.init()
        Self.all.withLock { $0.append(self) }
    }

    override func release(_ bytes: UnsafeRawBufferPointer) {
        released.wrappingAdd(1, ordering: .relaxed)
    }
    var count: Int { released.load(ordering: .relaxed) }
}

/// Records (protocol tag, flow, sequence, workstream, thread kind) of every packet a handler sees.
final class Recorder: Sendable {
    struct Entry: Sendable, Equatable {
        var tag: Int
        var flow: UInt32?
        var sequence: UInt64
        var workstream: Int
        var onWorker: Bool
    }
    let entries = Locked<[Entry]>([])
    let emptyCalls = Atomic<Int>(0)
    /// The thread that made the recorder: calls on any other thread ran on a worker.
    let creator = UInt(pthread_self())

    func handler(tag: Int) -> PacketHandler {
        { burst in
            if burst.isEmpty { self.emptyCalls.wrappingAdd(1, ordering: .relaxed) }
            let onWorker = UInt(pthread_self()) != self.creator
            while let packet = burst.next() {
                let entry = Entry(
                    tag: tag, flow: packet.flowID, sequence: packet.timestamp, workstream: burst.workstreamID,
                    onWorker: onWorker)
                self.entries.withLock { $0.append(entry) }
            }
        }
    }

    var all: [Entry] { entries.withLock { $0 } }
}

#if canImport(Glibc)
    import Glibc
#endif

/// Collects warnings.
final class WarningLog: Sendable {
    let messages = Locked<[String]>([])
    var handler: @Sendable (String) -> Void { { message in self.messages.withLock { $0.append(message) } } }
    var all: [String] { messages.withLock { $0 } }
}

func packet(_ owner: ReleaseCounter?, source: UInt32 = 0, flow: UInt32? = nil, sequence: UInt64 = 0) -> Packet {
    Packet(sourceID: source, flowID: flow, timestamp: sequence, owner: owner)
}

/// Every packet offered is handled, dropped by a reason, or still queued — and was released
/// exactly once unless still queued.
func expectConservation(
    _ snapshot: NetISRSnapshot, offered: Int, releases: ReleaseCounter? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let totals = snapshot.totals
    #expect(totals.offered == offered, "engine counted \(totals.offered) offered", sourceLocation: sourceLocation)
    #expect(totals.accountedFor == offered, "accounted \(totals)", sourceLocation: sourceLocation)
    if let releases {
        #expect(releases.count == offered - totals.stillQueued, sourceLocation: sourceLocation)
    }
}

/// A value behind a pthread mutex (visible to ThreadSanitizer, unlike `Mutex` on Linux).
final class Locked<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout Value) -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body(&value)
    }
}
