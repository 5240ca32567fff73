// NetISRConfiguration: what is fixed when an engine is made (the seed's boot tunables) and
// the defaults of what may change at run time (the seed's read-write sysctls).

import CNetISRShim

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The engine's start-up settings.
///
/// The defaults follow FreeBSD (`net.isr.*`): 32 protocol slots, default queue limit 256,
/// maximum 10,240, direct dispatch, unbound threads, with one workstream per available CPU.
public struct NetISRConfiguration: Sendable {
    /// Worker threads, one workstream each (`net.isr.numthreads`). Default: the CPUs this
    /// process may use.
    public var workstreamCount: Int
    /// Protocol slots, 1…64 (the seed's fixed table of 32).
    public var maximumProtocols: Int = 32
    /// Queue limit for a registration that asks for 0 (`net.isr.defaultqlimit`).
    public var defaultQueueLimit: Int = 256
    /// The highest queue limit (`net.isr.maxqlimit`): registration caps to it with a warning;
    /// setting more at run time is an error.
    public var maximumQueueLimit: Int = 10_240
    /// The engine-wide dispatch policy (`net.isr.dispatch`); changeable at run time.
    public var dispatchPolicy: DispatchPolicy = .direct
    /// Bind workstream N to CPU N mod the CPU count (`net.isr.bindthreads`).
    public var bindThreads = false
    /// Keep workers polling instead of sleeping when idle (the seed's `DEVICE_POLLING`).
    public var pollMode = false
    /// The most times an idle worker re-checks for work (with a CPU pause between checks) before
    /// it sleeps. Spinning briefly saves a futex wake-up per burst when packets arrive in a
    /// steady stream; the worker shortens its spins (to 64) while they keep ending in sleep; 0
    /// sleeps at once. Ignored in poll mode.
    public var idleSpins = 2_000
    /// Run every handler under the global lock ("Giant"), as the seed's `debug.mpsafenet=0`.
    public var serializeAllHandlers = false
    /// The most packets one handler call receives from a queue.
    public var burstSize = 32
    /// The most packets a worker takes from one queue before serving the next pending protocol.
    public var quantum = 256
    /// Where warnings go (the seed's `printf`). Default: standard error.
    public var warningHandler: @Sendable (String) -> Void = { message in
        var stream = StandardErrorStream()
        print("netisr: \(message)", to: &stream)
    }

    /// Creates the default configuration.
    public init(workstreamCount: Int? = nil) {
        self.workstreamCount = workstreamCount ?? Int(netisr_available_cpus())
    }

    func validate() throws(NetISRError) {
        func check(_ condition: Bool, _ message: String) throws(NetISRError) {
            if !condition { throw NetISRError(.invalidConfiguration, message) }
        }
        try check((1...1024).contains(workstreamCount), "workstreamCount must be 1…1024, not \(workstreamCount)")
        try check((1...64).contains(maximumProtocols), "maximumProtocols must be 1…64, not \(maximumProtocols)")
        try check(maximumQueueLimit >= 1 && maximumQueueLimit <= 1 << 24, "maximumQueueLimit must be 1…16777216")
        try check(
            (1...maximumQueueLimit).contains(defaultQueueLimit),
            "defaultQueueLimit must be 1…maximumQueueLimit, not \(defaultQueueLimit)")
        try check((1...4096).contains(burstSize), "burstSize must be 1…4096, not \(burstSize)")
        try check(quantum >= burstSize, "quantum must be at least burstSize")
        try check(idleSpins >= 0, "idleSpins must not be negative")
    }
}

/// Writes to standard error without Foundation.
struct StandardErrorStream: TextOutputStream {
    mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { bytes in
            _ = Glibc.write(2, bytes.baseAddress, bytes.count)
        }
    }
}
