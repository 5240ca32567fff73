// A progress bar on standard error for long replays: bytes read of the total, rate and ETA; for
// input of unknown size (a pipe, standard input) the bytes read and the rate. Drawn only when
// standard error is a terminal (and not with --quiet).

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

final class ProgressBar: Sendable {
    private let enabled: Bool
    /// All files' bytes; nil when some file's size is unknown (not a regular file).
    private let total: Int?
    private let sizes: [Int]
    private let started: UInt64
    private let drawn = Atomic<Bool>(false)

    init(files: [String], enabled: Bool) {
        self.enabled = enabled
        let known = files.map { path -> Int? in
            var status = stat()
            guard path != "-", stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
            return Int(status.st_size)
        }
        sizes = known.map { $0 ?? 0 }
        total = known.contains(nil) ? nil : sizes.reduce(0, +)
        started = Self.now()
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    func update(file: Int, read: Int, size: Int?) {
        guard enabled, total != 0 else { return }
        let done = sizes.prefix(file).reduce(0, +) + read
        let elapsed = Double(Self.now() - started) / 1e9
        let rate = Double(done) / max(elapsed, 1e-3) / 1e6
        guard let total else {
            writeStandardError("\r\(done >> 20) MiB  \(Int(rate)) MB/s ")
            drawn.store(true, ordering: .relaxed)
            return
        }
        let fraction = min(1, Double(done) / Double(total))
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
