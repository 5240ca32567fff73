// CaptureOutputOptions: `netisr capture`'s options for saving what it captured — the file, its
// snapshot length and its rotation — and the writer they make.

import ArgumentParser
import FlowMeter
import PacketWire

#if canImport(Glibc)
    import Glibc
#endif

struct CaptureOutputOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also write what was captured to FILE (.pcapng for pcapng, otherwise pcap; .gz after either "
                + "compresses it; - for standard output, the report then on standard error)."))
    var write: String?

    @Option(
        name: [.customShort("s"), .customLong("snaplen")],
        help: ArgumentHelp(
            "Keep at most N bytes of each frame, 1…262144 (tcpdump's -s): the kernel cuts frames before they "
                + "enter the ring; lengths on the wire are still counted whole.", valueName: "n"))
    var snapLength: Int?

    @Option(
        name: .customLong("rotate-size"),
        help: ArgumentHelp(
            "With --write: start a new file before one would pass MB million bytes (tcpdump's -C); the files are "
                + "numbered after FILE (FILE_00001.pcap, …).", valueName: "MB"))
    var rotateSize: Double?

    @Option(
        name: .customLong("rotate-seconds"),
        help: ArgumentHelp(
            "With --write: start a new file every SECONDS of capture time (tcpdump's -G).", valueName: "seconds"))
    var rotateSeconds: Double?

    @Option(
        name: .customLong("rotate-files"),
        help: ArgumentHelp(
            "With --rotate-size or --rotate-seconds: keep N files, the oldest written over (tcpdump's -W).",
            valueName: "n"))
    var rotateFiles: Int?

    func validate() throws {
        for (name, value) in [("--rotate-size", rotateSize), ("--rotate-seconds", rotateSeconds)] {
            if let value, !(value > 0 && value.isFinite) { throw ValidationError("\(name) must be positive") }
        }
        if let snapLength, !(1...CaptureReader.maximumCapturedLength).contains(snapLength) {
            throw ValidationError("--snaplen must be 1…262144")
        }
        if let rotateFiles, rotateFiles <= 0 { throw ValidationError("--rotate-files must be positive") }
        if rotateFiles != nil && rotation == nil {
            throw ValidationError("--rotate-files needs --rotate-size or --rotate-seconds")
        }
        if rotation != nil && (write == nil || write == "-") {
            throw ValidationError("--rotate-size and --rotate-seconds need --write FILE (not standard output)")
        }
    }

    /// How `--write` moves on to new files, if asked.
    var rotation: CaptureRotation? {
        guard rotateSize != nil || rotateSeconds != nil else { return nil }
        return CaptureRotation(
            maximumBytes: rotateSize.map { Int(min($0 * 1e6, 1e18)) }, seconds: rotateSeconds, files: rotateFiles)
    }

    /// The writer `--write` asks for, created before any frame is read; nil without `--write`.
    func openWriter() throws -> CaptureWriter? {
        try write.map {
            try CaptureWriter(
                path: $0, format: .forPath($0, nanosecond: true),
                snapLength: snapLength ?? CaptureReader.maximumCapturedLength, rotation: rotation)
        }
    }

    /// Ends the file after the capture: the kernel's counts as interface statistics (pcapng) unless
    /// a write failed (reported with the result; the file then ends where it failed), then closes
    /// it and, when rotating, says how many files it took.
    func finish(_ writer: CaptureWriter, after result: ReplayResult) throws {
        if !result.errors.contains(where: { $0.file == "--write" }) {
            let dropped = UInt64(result.drops.first { $0.reason == "kernel" }?.packets ?? 0)
            try writer.writeStatistics(
                received: UInt64(result.frames) + dropped, dropped: dropped, delivered: UInt64(result.frames),
                timestamp: UInt64(time(nil)) * 1_000_000_000)
        }
        try writer.close()
        if rotation != nil {
            standardError("netisr: --write: \(writer.frames) frames in \(writer.files) files, the last \(writer.path)")
        }
    }
}
