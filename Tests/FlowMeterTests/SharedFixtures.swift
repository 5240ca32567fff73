// Locating ../shared (the steering repo's captures and references) beside the package. Tests
// that need it skip with a clear message when it is absent, as in a user's clone.

#if canImport(Glibc)
    import Glibc
#endif

enum SharedFixtures {
    /// `../shared` next to the package root, if present.
    static let root: String? = {
        var path = #filePath
        for _ in 0..<3 {
            if let slash = path.lastIndex(of: "/") { path = String(path[..<slash]) }
        }
        let shared = path + "/../shared"
        var status = stat()
        return stat(shared + "/captures", &status) == 0 ? shared : nil
    }()

    static let missingMessage = "../shared is not beside the package (a user's clone has none); skipping"

    /// The names of the entries of a directory.
    static func list(_ directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// A whole text file, or nil.
    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let got = fread(&chunk, 1, chunk.count, file)
            if got <= 0 { break }
            bytes += chunk[0..<got]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A whole binary file, or nil.
    static func bytes(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
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
    static func summary(_ capture: String) -> [String: String]? {
        guard let root, let text = read("\(root)/captures/reference/\(capture)/summary.tsv") else { return nil }
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }
}
