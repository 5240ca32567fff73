// The Toeplitz hash against the published verification vectors.

import PacketWire
import TestSupport
import Testing

@Suite struct ToeplitzTests {
    let hasher = ToeplitzHash()

    @Test func microsoftIPv4VectorsFromShared() throws {
        guard let root = SharedFixtures.root,
            let text = SharedFixtures.read("\(root)/rss/microsoft_ipv4.tsv")
        else {
            print(SharedFixtures.missingMessage)
            return
        }
        var rows = 0
        for line in text.split(separator: "\n").dropFirst() {
            let columns = line.split(separator: "\t").map(String.init)
            guard columns.count >= 7, let source = IPAddress(columns[1]), let destination = IPAddress(columns[3]),
                let sourcePort = UInt16(columns[2]), let destinationPort = UInt16(columns[4])
            else { continue }
            let flow = FlowKey(
                source: source, destination: destination, sourcePort: sourcePort, destinationPort: destinationPort,
                ipProtocol: 6)
            #expect(String(hasher.hash(flow, includePorts: true), radix: 16) == columns[5].lowercased().drop0x)
            #expect(String(hasher.hash(flow, includePorts: false), radix: 16) == columns[6].lowercased().drop0x)
            rows += 1
        }
        #expect(rows == 5)
    }

    /// Microsoft's IPv6 rows ("Verifying the RSS Hash Calculation"), source first.
    @Test(
        arguments: [
            ("3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2cc1_8cd5, 0x4020_7d3d),
            ("3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0f0c_461c, 0xdde5_1bbf),
            ("3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024, 0x4b61_e985, 0x02d1_feef),
        ] as [(String, UInt16, String, UInt16, UInt32, UInt32)])
    func microsoftIPv6Vectors(
        source: String, sourcePort: UInt16, destination: String, destinationPort: UInt16, addressesOnly: UInt32,
        withPorts: UInt32
    ) throws {
        let flow = FlowKey(
            source: try #require(IPAddress(source)), destination: try #require(IPAddress(destination)),
            sourcePort: sourcePort, destinationPort: destinationPort, ipProtocol: 6)
        #expect(hasher.hash(flow, includePorts: false) == addressesOnly)
        #expect(hasher.hash(flow, includePorts: true) == withPorts)
    }

    @Test func lengthVectorsFromShared() throws {
        guard let root = SharedFixtures.root, let text = SharedFixtures.read("\(root)/rss/length_vectors.tsv") else {
            print(SharedFixtures.missingMessage)
            return
        }
        let long = ToeplitzHash(key: Array(repeating: ToeplitzHash.microsoftKey, count: 6).flatMap { $0 })
        let data = (0..<240).map { UInt8($0 & 0xFF) }
        var rows = 0
        for line in text.split(separator: "\n").dropFirst() {
            let columns = line.split(separator: "\t")
            guard columns.count >= 2, let length = Int(columns[0]), let expected = UInt32(columns[1], radix: 16) else {
                continue
            }
            #expect(long.hash(Array(data[0..<length])) == expected, "length \(length)")
            rows += 1
        }
        #expect(rows == 236)
    }

    @Test func symmetricHashIsTheSameBothWays() throws {
        let forward = FlowKey(
            source: try #require(IPAddress("10.0.0.1")), destination: try #require(IPAddress("192.168.7.9")),
            sourcePort: 40_000, destinationPort: 443, ipProtocol: 6)
        #expect(hasher.symmetricHash(forward) == hasher.symmetricHash(forward.reversed))
        #expect(hasher.hash(forward) != hasher.hash(forward.reversed))
        #expect(forward.canonical == forward.reversed.canonical)
    }

    /// The IPv4 address-pair path (what a replay hashes every IPv4 frame with) gives what the
    /// general hash gives for the canonical key, whichever way round, and whatever the ports.
    @Test func ipv4AddressPairHashEqualsTheGeneralHashOfTheCanonicalKey() {
        var generator = SystemRandomNumberGenerator()
        let short = ToeplitzHash(key: Array(ToeplitzHash.microsoftKey.prefix(10)))  // 6 input bytes: general path
        for round in 0..<2_000 {
            // Some pairs share an address, or have only the ports to order them.
            let first = UInt32.random(in: 0...UInt32.max, using: &generator)
            let second = round % 10 == 0 ? first : UInt32.random(in: 0...UInt32.max, using: &generator)
            let flow = FlowKey(
                source: IPAddress(ipv4: first), destination: IPAddress(ipv4: second),
                sourcePort: UInt16.random(in: 0...UInt16.max, using: &generator),
                destinationPort: UInt16.random(in: 0...UInt16.max, using: &generator), ipProtocol: 17)
            for hasher in [hasher, short] {
                let expected = hasher.hash(flow.canonical, includePorts: false)
                #expect(hasher.symmetricHash(flow, includePorts: false) == expected)
                #expect(hasher.symmetricHash(flow.reversed, includePorts: false) == expected)
                #expect(hasher.symmetricHash(ipv4: first, second) == expected)
                #expect(hasher.symmetricHash(ipv4: second, first) == expected)
            }
        }
    }

    /// The IPv6 address-pair path gives what the general hash gives for the canonical key,
    /// whichever way round; with a key too short for 32 input bytes, too.
    @Test func ipv6AddressPairHashEqualsTheGeneralHashOfTheCanonicalKey() {
        var generator = SystemRandomNumberGenerator()
        let short = ToeplitzHash(key: Array(ToeplitzHash.microsoftKey.prefix(20)))  // 16 input bytes
        for round in 0..<2_000 {
            // Some pairs share an address, or its first half (ordered by the second).
            let first = IPAddress(
                ipv6High: UInt64.random(in: 0...UInt64.max, using: &generator),
                low: UInt64.random(in: 0...UInt64.max, using: &generator))
            let second =
                round % 10 == 0
                ? first
                : IPAddress(
                    ipv6High: round % 10 == 1 ? first.high : UInt64.random(in: 0...UInt64.max, using: &generator),
                    low: UInt64.random(in: 0...UInt64.max, using: &generator))
            let flow = FlowKey(source: first, destination: second, ipProtocol: 6)
            for hasher in [hasher, short] {
                let expected = hasher.hash(flow.canonical, includePorts: false)
                #expect(hasher.symmetricHash(flow, includePorts: false) == expected)
                #expect(hasher.symmetricHash(ipv6: first, second) == expected)
                #expect(hasher.symmetricHash(ipv6: second, first) == expected)
            }
        }
    }

    @Test func inputsLongerThanTheKeyIgnoreTheExcess() {
        let short = ToeplitzHash(key: [0xFF, 0, 0, 0, 0xFF])
        #expect(short.maximumInputLength == 1)
        #expect(short.hash([0x80, 0xFF, 0xFF]) == short.hash([0x80]))
        #expect(short.hash([0x80]) == 0xFF00_0000)
    }
}

extension String {
    var drop0x: String {
        let trimmed = hasPrefix("0x") ? String(dropFirst(2)) : self
        let stripped = trimmed.drop { $0 == "0" }
        return stripped.isEmpty ? "0" : String(stripped)
    }
}
