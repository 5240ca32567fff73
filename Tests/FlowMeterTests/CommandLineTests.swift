// The `netisr` command in pipelines, as tcpdump's `-r -` and `-w -` are used: `synth --out -` and
// `capture --write -` write the capture to standard output, `replay -` reads standard input. Runs
// the executable that `swift test` builds beside the tests.

import PacketWire
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CommandLineTests {
    static func netisr() throws -> String {
        try #require(
            Shell.builtExecutable("netisr"), "`swift test` builds the netisr executable beside the tests; it is missing"
        )
    }

    @Test(arguments: ["pcap", "pcapng"])
    func aCaptureThroughAPipeCountsAsTheSameFile(format: String) throws {
        let netisr = try Self.netisr()
        let file = "/tmp/netisr-pipe-\(getpid()).\(format)"
        let piped = file + ".piped"
        defer {
            unlink(file)
            unlink(piped)
        }
        let synth = "'\(netisr)' synth --packets 3000 --flows 200 --seed 5 --format \(format)"
        // On standard output: the same bytes as in a file, and nothing else.
        let written = Shell.run(
            "\(synth) --out '\(file)' > /dev/null && \(synth) --out - > '\(piped)' && cmp -s '\(file)' '\(piped)'")
        #expect(written?.status == 0)
        let summary = try #require(Shell.run("\(synth) --out - | '\(netisr)' replay - --quiet --json"))
        #expect(summary.status == 0 && summary.output.hasPrefix("{\"frames\":3000,"))
        for table in ["ip", "ipv6", "tcp", "udp"] {
            let fromFile = try #require(Shell.run("'\(netisr)' replay '\(file)' --quiet --conversations \(table)"))
            let fromPipe = try #require(
                Shell.run("\(synth) --out - | '\(netisr)' replay - --quiet --conversations \(table)"))
            #expect(fromFile.status == 0 && fromPipe.status == 0)
            #expect(fromFile.output.split(separator: "\n").count > 10)
            #expect(fromPipe.output == fromFile.output)
        }
    }

    /// `--flows -`: the flow records on standard output, byte for byte what `--flows FILE` writes,
    /// and the report on standard error.
    @Test func flowRecordsWrittenToStandardOutputKeepTheReportApart() throws {
        let netisr = try Self.netisr()
        let file = "/tmp/netisr-flows-\(getpid()).csv"
        let report = file + ".report"
        defer {
            unlink(file)
            unlink(report)
        }
        let toFile = Shell.run("'\(netisr)' replay --quiet --flows '\(file)' > /dev/null")
        #expect(toFile?.status == 0)
        let toStandardOutput = try #require(Shell.run("'\(netisr)' replay --quiet --flows - 2> '\(report)'"))
        #expect(toStandardOutput.status == 0)
        let written = try #require(SharedFixtures.read(file))
        #expect(written.hasPrefix("src,sport,dst,") && written.split(separator: "\n").count > 100)
        #expect(toStandardOutput.output == written)
        #expect(try #require(SharedFixtures.read(report)).hasPrefix("Frames:"))
    }

    /// `--top N` lists N conversations, the largest first, and N endpoints.
    @Test(arguments: [
        ("--write x.pcap --rotate-files 3", "--rotate-files needs --rotate-size or --rotate-seconds"),
        ("--rotate-seconds 5", "need --write FILE"), ("--write - --rotate-size 10", "need --write FILE"),
        ("--write x.pcap --rotate-size 0", "--rotate-size must be positive"),
        ("--write x.pcap --rotate-seconds 1 --rotate-files 0", "--rotate-files must be positive"),
        ("-s 0", "--snaplen must be 1…262144"), ("--snaplen 262145", "--snaplen must be 1…262144"),
    ])
    func captureOptionsAreChecked(options: String, message: String) throws {
        let netisr = try Self.netisr()
        let run = try #require(Shell.run("'\(netisr)' capture -i lo \(options) 2>&1"))
        #expect(run.status != 0 && run.output.contains(message), "\(run.output)")
    }

    @Test func ioStatisticsPrintAsCSVOrInTheJSONObject() throws {
        let netisr = try Self.netisr()
        let csv = try #require(Shell.run("'\(netisr)' replay --quiet --io-stat 0.01"))
        let lines = csv.output.split(separator: "\n")
        #expect(csv.status == 0 && lines.first == "start,end,frames,bytes" && lines.count > 5)
        #expect(lines.dropFirst().reduce(0) { $0 + (Int($1.split(separator: ",")[2]) ?? 0) } == 10_000)
        let json = try #require(Shell.run("'\(netisr)' replay --quiet --io-stat 0.01 --json"))
        #expect(json.output.contains("\"io_stat\":{\"interval_us\":10000,"))
        let plain = try #require(Shell.run("'\(netisr)' replay --quiet --json"))
        #expect(!plain.output.contains("io_stat"))
        for options in ["--io-stat 0", "--io-stat 1 --conversations tcp", "--io-stat 1 --flows -"] {
            let run = try #require(Shell.run("'\(netisr)' replay --quiet \(options) 2>&1"))
            #expect(run.status != 0 && run.output.contains("--io-stat"), "\(options): \(run.output)")
        }
    }

    @Test func theTopTableListsAsManyConversationsAsAsked() throws {
        let netisr = try Self.netisr()
        for count in [0, 3, 25] {
            let run = try #require(Shell.run("'\(netisr)' replay --quiet --top \(count)"))
            #expect(run.status == 0)
            let lines = run.output.split(separator: "\n", omittingEmptySubsequences: false)
            let header = try #require(lines.firstIndex { $0.hasPrefix("proto A ") })
            let rows = lines[(header + 1)...].prefix { !$0.isEmpty }
            #expect(rows.count == count)
            let bytes = rows.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }
            #expect(bytes == bytes.sorted(by: >) && bytes.count == count)
            let endpoints = try #require(lines.firstIndex { $0.hasPrefix("address ") })
            #expect(lines[(endpoints + 1)...].prefix { !$0.isEmpty }.count == count)
        }
    }

    /// With the capture on standard output, the report goes to standard error: what comes out is
    /// a capture file and nothing else.
    @Test func aLiveCaptureWrittenToStandardOutputKeepsItsReportApart() throws {
        guard geteuid() == 0 else {
            print("live capture needs root (CAP_NET_RAW); skipping")
            return
        }
        let netisr = try Self.netisr()
        let output = "/tmp/netisr-stdout-\(getpid()).pcap"
        let report = output + ".report"
        defer {
            unlink(output)
            unlink(report)
        }
        let run = Shell.run("'\(netisr)' capture -i lo --duration 0.5 --json --write - > '\(output)' 2> '\(report)'")
        #expect(run?.status == 0)
        let bytes = try #require(SharedFixtures.bytes(output))
        let reader = try CaptureReader(bytes: bytes)
        var frames = 0
        while try reader.read(maximum: 256, { _ in frames += 1 }) > 0 {}
        #expect(reader.bytesRead == bytes.count)
        let text = try #require(SharedFixtures.read(report))
        #expect(text.contains("{\"frames\":\(frames),"))
    }
}
