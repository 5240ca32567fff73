// A progress bar on standard error for long replays: bytes read of the total, rate and ETA.
// Drawn only when standard error is a terminal (and not with --quiet).

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

final class ProgressBar: Sendable {
    private let enabled: Bool
    private let total: Int
    private let sizes: [Int]
    private let started: UInt64
    private let drawn = Atomic<Bool>(false)

    init(files: [String], enabled: Bool) {
        self.enabled = enabled
        sizes = files.map { path in
            var status = stat()
            return stat(path, &status) == 0 ? Int(status.st_size) : 0
        }
        total = sizes.reduce(0, +)
        started = Self.now()
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    func update(file: Int, read: Int, size: Int?) {
        guard enabled, total > 0 else { return }
        let done = sizes.prefix(file).reduce(0, +) + read
        let elapsed = Double(Self.now() - started) / 1e9
        let fraction = min(1, Double(done) / Double(total))
        let rate = Double(done) / max(elapsed, 1e-3) / 1e6
        let eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line =
            "\r[\(bar)] \(Int(fraction * 100))%  \(done >> 20)/\(total >> 20) MiB  \(Int(rate)) MB/s  ETA \(Int(eta)) s "
        writeStandardError(line)
        drawn.store(true, ordering: .relaxed)
    }

    func finish() {
        if drawn.load(ordering: .relaxed) { writeStandardError("\r" + String(repeating: " ", count: 78) + "\r") }
    }
}
