// Running shell commands from tests: the external tools (tshark, tcpdump) and the `netisr`
// executable that `swift test` builds beside the test bundle.

#if canImport(Glibc)
    import Glibc
#endif

/// Shell commands for tests.
public enum Shell {
    /// Runs a shell command; its standard output and exit status (nil if it could not start).
    /// Standard error is discarded unless the command redirects it itself.
    public static func run(_ command: String) -> (output: String, status: Int32)? {
        guard let pipe = popen("{ \(command); } 2>/dev/null", "r") else { return nil }
        let output = SharedFixtures.readToEnd(pipe)
        let status = pclose(pipe)
        return (String(decoding: output, as: UTF8.self), status)
    }

    /// A path for a background command's standard error, `/tmp/netisr-NAME-PID.err`, with any file
    /// an earlier run left there removed (it must not say the command is ready already).
    public static func freshErrorFile(_ name: String) -> String {
        let path = "/tmp/netisr-\(name)-\(getpid()).err"
        unlink(path)
        return path
    }

    /// Waits until the file at `path` contains `text` (a background command's standard error
    /// saying it is ready: `netisr capture`'s "listening on"), at most `seconds`; whether it did.
    @discardableResult
    public static func waitUntil(file path: String, contains text: String, seconds: Double = 30) -> Bool {
        eventually(seconds: seconds) { SharedFixtures.read(path)?.contains(text) == true }
    }

    /// Whether `tool` is on the PATH.
    public static func has(_ tool: String) -> Bool { run("command -v \(tool)")?.status == 0 }

    /// The path of an executable product built beside the running test bundle (`swift test`
    /// builds the package's executables into the same directory), if it is there.
    public static func builtExecutable(_ name: String) -> String? {
        var path = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &path, path.count - 1)
        guard length > 0 else { return nil }
        let bundle = String(decoding: path[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = bundle.lastIndex(of: "/") else { return nil }
        let candidate = bundle[..<slash] + "/" + name
        return access(candidate, X_OK) == 0 ? candidate : nil
    }
}
