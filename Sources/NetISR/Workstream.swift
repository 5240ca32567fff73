// Workstream: one worker thread's scheduling state (FreeBSD's `struct netisr_workstream`).
//
// - `pending`: one bit per protocol with work here. Producers set bits with a sequentially
//   consistent OR after publishing packets; the worker reads-and-clears the word (S7) and
//   serves protocols lowest number first.
// - `flags`: RUNNING while the worker processes a pass, DISPATCHING while a caller runs a
//   handler here through hybrid dispatch. Each side takes its flag with a compare-exchange that
//   fails if the other's is set, so a workstream's handlers never run concurrently with each
//   other and a hybrid packet never overtakes queued ones.
// - `asleep` + `signal`: the worker stores `asleep`, then re-checks `pending` before waiting;
//   a producer ORs `pending`, then loads `asleep` and signals. Both sides use sequentially
//   consistent accesses, so at least one sees the other: no lost wake-up.
// - `carry`: protocols the worker left unfinished after a quantum; touched only by the thread
//   running passes.

import Synchronization

final class Workstream: @unchecked Sendable {  // unchecked: `carry` and `thread` are owned as described above
    static let running = 1
    static let dispatching = 2

    let id: Int
    /// The CPU it is bound to, or the CPU it is nominally associated with when unbound.
    let cpu: Int
    let isBound: Bool

    let pending = Atomic<UInt64>(0)
    private let padding0 = CacheLinePadding()
    let flags = Atomic<Int>(0)
    let asleep = Atomic<Bool>(false)
    private let padding1 = CacheLinePadding()

    let wakeups = Atomic<Int>(0)
    let passes = Atomic<Int>(0)
    let signal = WakeupSignal()
    var carry: UInt64 = 0

    init(id: Int, cpu: Int, isBound: Bool) {
        self.id = id
        self.cpu = cpu
        self.isBound = isBound
    }

    /// The thread name, as `ps -L` shows it.
    var threadName: String { "netisr \(id)" }

    /// Marks `bits` pending and wakes the worker if it sleeps.
    @inline(__always)
    func schedule(_ bits: UInt64) {
        pending.bitwiseOr(bits, ordering: .sequentiallyConsistent)
        if asleep.load(ordering: .sequentiallyConsistent) {
            signal.signal()
        }
    }

    /// Takes RUNNING, waiting out a hybrid dispatcher.
    func acquireRunning() {
        var spins = 0
        while true {
            let current = flags.load(ordering: .relaxed)
            if current & Self.dispatching == 0 {
                let (exchanged, _) = flags.compareExchange(
                    expected: current, desired: current | Self.running, ordering: .sequentiallyConsistent)
                if exchanged { return }
            }
            spins += 1
            backOff(spins)
        }
    }

    func releaseRunning() {
        flags.bitwiseAnd(~Self.running, ordering: .sequentiallyConsistent)
    }

    /// Takes DISPATCHING if the workstream is idle: not running, not dispatching, nothing pending.
    func tryAcquireDispatching() -> Bool {
        let (exchanged, _) = flags.compareExchange(
            expected: 0, desired: Self.dispatching, ordering: .sequentiallyConsistent)
        guard exchanged else { return false }
        if pending.load(ordering: .sequentiallyConsistent) != 0 {
            releaseDispatching()
            return false
        }
        return true
    }

    func releaseDispatching() {
        flags.bitwiseAnd(~Self.dispatching, ordering: .sequentiallyConsistent)
    }
}
