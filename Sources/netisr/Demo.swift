// `netisr demo`: the engine on a built-in synthetic workload, FreeBSD-style: an "ether" protocol
// (source-ordered, direct) hands each packet to "ip", "ip6" or "arp" (flow-ordered), whose
// handlers count packets and bytes per flow in per-workstream tables; the tables are merged at
// the end and the netstat -Q report is printed.

import ArgumentParser
import NetISR

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the engine on a built-in synthetic workload and print the netstat -Q report.")

    @OptionGroup var engineOptions: EngineOptions

    @Option(name: .long, help: "Packets to send.")
    var packets = 1_000_000

    @Option(name: .long, help: "Distinct flows.")
    var flows = 10_000

    @Flag(name: .long, help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard packets >= 0, flows >= 1 else { throw ValidationError("--packets ≥ 0 and --flows ≥ 1") }
    }

    func run() throws {
        var configuration = NetISRConfiguration(workstreamCount: engineOptions.threads)
        configuration.dispatchPolicy = engineOptions.dispatch.policy
        configuration.bindThreads = engineOptions.bind
        configuration.pollMode = engineOptions.poll
        let engine = try NetISR(configuration: configuration)
        let tables = DemoFlowTables(workstreams: engine.workstreamCount)
        try DemoProtocols.register(on: engine, tables: tables, queueLimit: engineOptions.qlimit)
        try engine.start()
        let clock = ContinuousClock()
        let started = clock.now
        DemoProtocols.send(packets: packets, flows: flows, to: engine)
        engine.stop(.drain)
        let elapsed = clock.now - started
        let snapshot = engine.snapshot()
        if json {
            print(NetstatReport.json(snapshot))
            return
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let merged = tables.merged()
        print(
            "Sent \(packets) packets in \(merged.count) flows in \(formatted(seconds * 1e3)) ms "
                + "(\(formatted(Double(packets) / max(seconds, 1e-9) / 1e6)) Mpps)")
        print(
            "Handled \(merged.values.reduce(0) { $0 + $1 }) packets at the flow tables; "
                + "drops: \(snapshot.totals.queueDrops) queue-full, \(snapshot.totals.noHandlerDrops) no-handler\n")
        print(NetstatReport.text(snapshot), terminator: "")
    }

    private func formatted(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return String(scaled)
    }
}
