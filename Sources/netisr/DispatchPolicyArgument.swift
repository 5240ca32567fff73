// Command-line spelling of the engine's dispatch policy.

import ArgumentParser
import NetISR

enum DispatchPolicyArgument: String, ExpressibleByArgument, CaseIterable {
    case direct, hybrid, deferred

    var policy: DispatchPolicy {
        switch self {
        case .direct: .direct
        case .hybrid: .hybrid
        case .deferred: .deferred
        }
    }
}
