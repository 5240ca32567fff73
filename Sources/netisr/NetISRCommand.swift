// The `netisr` command: one ParsableCommand per verb. This file is the root; each verb lives
// in its own file. The command is thin: it parses flags, wires the libraries, prints.

import ArgumentParser

@main
struct NetISRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "netisr",
        abstract: "A user-space, multi-core packet dispatch service modelled on FreeBSD's netisr.",
        subcommands: [ReplayCommand.self, CaptureCommand.self, Synth.self, Hash.self, Demo.self],
        defaultSubcommand: ReplayCommand.self
    )
}

/// Options shared by every verb that runs the engine.
struct EngineOptions: ParsableArguments {
    @Option(name: .long, help: "Workstreams (worker threads); default: one per CPU.")
    var threads: Int?

    @Option(name: .long, help: "Dispatch policy: direct, hybrid or deferred.")
    var dispatch: DispatchPolicyArgument = .deferred

    @Option(name: .long, help: "Queue limit per protocol and workstream (0: the engine's default).")
    var qlimit: Int = 0

    @Flag(name: .long, help: "Bind workstream N to CPU N.")
    var bind = false

    @Flag(name: .long, help: "Keep workers polling instead of sleeping when idle.")
    var poll = false

    func validate() throws {
        if let threads, !(1...1024).contains(threads) {
            throw ValidationError("--threads must be between 1 and 1024")
        }
        if qlimit < 0 { throw ValidationError("--qlimit must not be negative") }
    }
}
