// Draws the median ratios as a horizontal bar chart in SVG (log scale, 1× marked), so a reader
// can see at a glance where netisr is faster (right of the line) or slower (left).

#if canImport(Glibc)
    import Glibc
#endif

enum RatioChart {
    static func write(_ ratios: [(String, Double)], to path: String) throws {
        let rowHeight = 26
        let width = 900
        let labelWidth = 300
        let plotWidth = width - labelWidth - 80
        let height = rowHeight * ratios.count + 60
        let maxLog = max(1.0, ratios.map { abs(log10(max($0.1, 1e-3))) }.max() ?? 1)
        func x(_ ratio: Double) -> Int {
            labelWidth + Int((log10(max(ratio, 1e-3)) / maxLog + 1) / 2 * Double(plotWidth))
        }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="13">
            <text x="10" y="20" font-size="15">netisr throughput ÷ peer throughput (log scale; right of 1× = netisr faster)</text>

            """
        let one = x(1)
        for (index, (name, ratio)) in ratios.enumerated() {
            let y = 40 + index * rowHeight
            let end = x(ratio)
            let color = ratio >= 1 ? "#2e7d32" : "#c62828"
            svg += "<text x=\"10\" y=\"\(y + 16)\">\(name)</text>\n"
            svg +=
                "<rect x=\"\(min(one, end))\" y=\"\(y + 4)\" width=\"\(max(1, abs(end - one)))\" height=\"16\" fill=\"\(color)\"/>\n"
            let label = ratio >= 10 ? String(Int(ratio.rounded())) : String((ratio * 100).rounded() / 100)
            svg += "<text x=\"\(max(one, end) + 6)\" y=\"\(y + 16)\">\(label)×</text>\n"
        }
        svg += "<line x1=\"\(one)\" y1=\"30\" x2=\"\(one)\" y2=\"\(height - 10)\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(one - 8)\" y=\"\(height - 2)\">1×</text>\n</svg>\n"
        guard let file = fopen(path, "w") else { throw ChartError(path: path) }
        fputs(svg, file)
        fclose(file)
    }

    struct ChartError: Error, CustomStringConvertible {
        let path: String
        var description: String { "cannot write \(path)" }
    }
}

struct FileDescriptorStream {
    let descriptor: Int32
    static let standardError = FileDescriptorStream(descriptor: 2)
    func write(_ text: String) {
        var text = text
        text.withUTF8 { _ = Glibc.write(descriptor, $0.baseAddress, $0.count) }
    }
}
