// Rotating capture files (tcpdump's -C, -G and -W): every file is complete and within its bound,
// the files hold every frame once and in order, a ring of files keeps the newest, and the names
// are numbered after the path given.

import PacketWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CaptureRotationTests {
    static func contents(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return count == 0 ? bytes : nil }
            bytes += chunk[0..<count]
        }
    }

    /// Frame `index`: its length varies (60…1,059 bytes) and its bytes name it.
    static func frame(_ index: Int) -> [UInt8] {
        (0..<(60 + index * 7_919 % 1_000)).map { UInt8(truncatingIfNeeded: index &* 31 &+ $0) }
    }

    /// Writes `count` frames, one every 100 ms of capture time, through `rotation`; returns the
    /// writer (closed) and the base path.
    static func write(
        _ count: Int, format: CaptureWriter.Format, rotation: CaptureRotation, name: String
    ) throws -> (CaptureWriter, String) {
        let base = "/tmp/netisr-rotation-\(getpid())-\(name).\(format == .pcap(nanosecond: false) ? "pcap" : "pcapng")"
        let writer = try CaptureWriter(path: base, format: format, rotation: rotation)
        for index in 0..<count {
            try frame(index).withUnsafeBytes {
                try writer.write(
                    $0, timestamp: 1_700_000_000_000_000_000 + UInt64(index) * 100_000_000, linkType: .ethernet)
            }
        }
        try writer.close()
        return (writer, base)
    }

    static func remove(_ base: String, files: Int, rotation: CaptureRotation) {
        for number in 1...max(files, 1) { unlink(rotation.path(base, file: number)) }
    }

    @Test(arguments: [CaptureWriter.Format.pcap(nanosecond: false), .pcapng(nanosecond: true)])
    func filesStayWithinTheirSizeAndHoldEveryFrameInOrder(format: CaptureWriter.Format) throws {
        let rotation = CaptureRotation(maximumBytes: 20_000)
        let (writer, base) = try Self.write(300, format: format, rotation: rotation, name: "size")
        defer { Self.remove(base, files: writer.files, rotation: rotation) }
        // ≈ 170 KB of frames in files of at most 20,000 bytes.
        #expect((9...12).contains(writer.files) && writer.path == rotation.path(base, file: writer.files))
        var frames: [[UInt8]] = []
        for number in 1...writer.files {
            let bytes = try #require(Self.contents(rotation.path(base, file: number)))
            #expect(bytes.count <= 20_000)
            let (records, error) = readAll(bytes)
            #expect(error == nil && !records.isEmpty)
            // A file is full: its next file's first frame would not have fit.
            if number < writer.files {
                let next = frames.count + records.count
                #expect(bytes.count + Self.frame(next).count + 16 > 20_000)
            }
            frames += records.map(\.0)
        }
        #expect(frames == (0..<300).map(Self.frame))
        #expect(Self.contents(base) == nil)
    }

    @Test func filesSpanLessThanTheirIntervalOfCaptureTime() throws {
        let rotation = CaptureRotation(seconds: 2)
        let (writer, base) = try Self.write(95, format: .pcapng(nanosecond: true), rotation: rotation, name: "time")
        defer { Self.remove(base, files: writer.files, rotation: rotation) }
        // 9.4 s of frames, 100 ms apart: 20 to a file, 15 in the last.
        #expect(writer.files == 5)
        let counts = (1...5).map { readAll(Self.contents(rotation.path(base, file: $0)) ?? []).records.count }
        #expect(counts == [20, 20, 20, 20, 15])
    }

    @Test func aRingOfFilesKeepsTheNewest() throws {
        let rotation = CaptureRotation(seconds: 1, files: 3)
        let (writer, base) = try Self.write(75, format: .pcap(nanosecond: false), rotation: rotation, name: "ring")
        defer { Self.remove(base, files: 3, rotation: rotation) }
        // 8 files of 10 frames: 1 2 3 1 2 3 1 2 — file 3 holds the sixth tenth, 1 the seventh,
        // 2 the last five frames; number 4 was never made.
        #expect(writer.files == 8 && writer.path == rotation.path(base, file: 2))
        let firstFrames = (1...3).map { readAll(Self.contents(rotation.path(base, file: $0)) ?? []).records.first?.0 }
        #expect(firstFrames == [Self.frame(60), Self.frame(70), Self.frame(50)])
        #expect(readAll(Self.contents(rotation.path(base, file: 2)) ?? []).records.count == 5)
        #expect(Self.contents(CaptureRotation(seconds: 1).path(base, file: 4)) == nil)
    }

    @Test func namesAreNumberedBeforeTheExtension() {
        let plain = CaptureRotation(maximumBytes: 1)
        #expect(plain.path("/tmp/cap.pcapng", file: 1) == "/tmp/cap_00001.pcapng")
        #expect(plain.path("cap.pcap", file: 123_456) == "cap_123456.pcap")
        #expect(plain.path("/data.d/capture", file: 7) == "/data.d/capture_00007")
        #expect(plain.path(".hidden", file: 2) == ".hidden_00002")
        let ring = CaptureRotation(maximumBytes: 1, files: 4)
        #expect(
            (1...9).map { ring.path("c.pcap", file: $0).dropFirst(2).prefix(5) } == [
                "00001", "00002", "00003", "00004", "00001", "00002", "00003", "00004", "00001",
            ])
    }

    @Test func standardOutputAndAnUncreatableNextFileGiveErrors() throws {
        #expect(throws: CaptureError.self) {
            try CaptureWriter(path: "-", format: .pcap(nanosecond: false), rotation: CaptureRotation(seconds: 1))
        }
        let directory = "/tmp/netisr-rotation-dir-\(getpid())"
        mkdir(directory, 0o755)
        let rotation = CaptureRotation(seconds: 1)
        let writer = try CaptureWriter(
            path: directory + "/c.pcap", format: .pcap(nanosecond: false), rotation: rotation)
        let frame = Self.frame(1)
        try frame.withUnsafeBytes { try writer.write($0, timestamp: 0, linkType: .ethernet) }
        unlink(rotation.path(directory + "/c.pcap", file: 1))
        rmdir(directory)
        // The next file's directory is gone: the frame due in it fails, and so does any after it.
        for timestamp: UInt64 in [2_000_000_000, 3_000_000_000] {
            #expect(throws: CaptureError.self) {
                try frame.withUnsafeBytes { try writer.write($0, timestamp: timestamp, linkType: .ethernet) }
            }
        }
        #expect(writer.frames == 1 && writer.files == 2)
    }
}
