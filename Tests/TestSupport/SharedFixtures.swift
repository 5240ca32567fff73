// TestSupport: what several test targets share. SharedFixtures locates ../shared (the steering
// repo's captures and references) beside the package; tests that need it skip with a clear
// message when it is absent, as in a user's clone.

#if canImport(Glibc)
    import Glibc
#endif

/// The shared captures, references and test vectors beside the package.
public enum SharedFixtures {
    /// `../shared` next to the package root, if present.
    public static let root: String? = {
        var path = #filePath
        for _ in 0..<3 {
            if let slash = path.lastIndex(of: "/") { path = String(path[..<slash]) }
        }
        let shared = path + "/../shared"
        var status = stat()
        return stat(shared + "/captures", &status) == 0 ? shared : nil
    }()

    /// What a test prints when it skips for want of ../shared.
    public static let missingMessage = "../shared is not beside the package (a user's clone has none); skipping"

    /// The names of the entries of a directory.
    public static func list(_ directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        while let entry = readdir(handle) {
            // The name is read in place, up to its NUL: a record is only as long as its name, so
            // copying the 256-byte `d_name` field out would read past the last one (AddressSanitizer
            // reported it).
            let name = String(cString: (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// A whole text file, or nil.
    public static func read(_ path: String) -> String? {
        bytes(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A whole binary file, or nil.
    public static func bytes(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        return readToEnd(file)
    }

    /// Everything left to read from an open stream (a file, or a pipe from `popen`).
    public static func readToEnd(_ file: UnsafeMutablePointer<FILE>) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let got = fread(&chunk, 1, chunk.count, file)
            if got <= 0 { break }
            bytes += chunk[0..<got]
        }
        return bytes
    }

    /// A reference's summary.tsv as a dictionary.
    public static func summary(_ capture: String) -> [String: String]? {
        guard let root, let text = read("\(root)/captures/reference/\(capture)/summary.tsv") else { return nil }
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }
}
