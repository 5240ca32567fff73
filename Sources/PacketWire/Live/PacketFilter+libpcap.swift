// PacketFilter+libpcap: filter expressions in tcpdump's syntax, compiled by libpcap, which is
// loaded at run time (CLinuxCapture's netisr_compile_filter), so it is needed only by those who
// filter. Live capture attaches the program to its socket; a replay runs it (PacketFilter.swift).

import CLinuxCapture

#if canImport(Glibc)
    import Glibc
#endif

extension PacketFilter {
    /// Compiles `expression` (tcpdump's filter syntax) for frames of `linkType` with libpcap.
    public init(_ expression: String, linkType: LinkType) throws(PacketFilterError) {
        try self.init(expression, dataLinkType: Self.dataLinkType(of: linkType))
    }

    /// Compiles `expression` for libpcap's data link type `dataLinkType` (DLT_*); a frame it keeps
    /// is kept up to `snapLength` bytes (the program's return value, as the kernel reads it).
    init(_ expression: String, dataLinkType: Int32, snapLength: Int = CaptureReader.maximumCapturedLength)
        throws(PacketFilterError)
    {
        try self.init(
            instructions: Self.compile(expression, dataLinkType: dataLinkType, snapLength: Int32(clamping: snapLength)))
    }

    /// libpcap's program for `expression`.
    private static func compile(_ expression: String, dataLinkType: Int32, snapLength: Int32) throws(PacketFilterError)
        -> [Instruction]
    {
        var program: UnsafeMutableRawPointer?
        var count: UInt32 = 0
        var message = [CChar](repeating: 0, count: 512)
        guard
            netisr_compile_filter(expression, dataLinkType, snapLength, &program, &count, &message, message.count)
                == 0,
            let program
        else {
            throw PacketFilterError(
                message: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { free(program) }
        return (0..<Int(count)).map { index in
            let bytes = program + index * 8
            return Instruction(
                code: bytes.loadUnaligned(as: UInt16.self), jumpIfTrue: bytes.load(fromByteOffset: 2, as: UInt8.self),
                jumpIfFalse: bytes.load(fromByteOffset: 3, as: UInt8.self),
                constant: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        }
    }

    /// libpcap's DLT number for a file's link type (they differ for raw IP).
    static func dataLinkType(of linkType: LinkType) -> Int32 {
        switch linkType {
        case .raw, .rawBSD12, .rawBSD14: 12  // DLT_RAW as Linux numbers it
        default: Int32(truncatingIfNeeded: linkType.rawValue)
        }
    }

    /// The program as the kernel's `struct sock_filter` array (native byte order), for a socket.
    var kernelProgram: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(instructions.count * 8)
        for instruction in instructions {
            withUnsafeBytes(of: instruction.code) { bytes += $0 }
            bytes += [instruction.jumpIfTrue, instruction.jumpIfFalse]
            withUnsafeBytes(of: instruction.constant) { bytes += $0 }
        }
        return bytes
    }
}
