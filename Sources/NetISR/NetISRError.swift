// NetISRError: every way a set-up call can fail. The packet path never throws; it returns a
// DispatchOutcome and counts drops.

/// An error from registration, configuration or lifecycle calls.
public struct NetISRError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case protocolOutOfRange, protocolTaken, protocolNotRegistered, invalidRegistration,
                queueLimitAboveMaximum, invalidConfiguration, alreadyStarted, notRunning, threadStartFailed
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The protocol number is below 0 or not below the configured maximum.
        public static let protocolOutOfRange = Code(.protocolOutOfRange)
        /// Another protocol is registered in that slot.
        public static let protocolTaken = Code(.protocolTaken)
        /// Nothing is registered in that slot.
        public static let protocolNotRegistered = Code(.protocolNotRegistered)
        /// The registration is inconsistent (empty name, a queue setting on a software interrupt…).
        public static let invalidRegistration = Code(.invalidRegistration)
        /// A queue limit above the configured maximum was set at run time.
        public static let queueLimitAboveMaximum = Code(.queueLimitAboveMaximum)
        /// The configuration is out of range.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// `start()` was called on a running engine.
        public static let alreadyStarted = Code(.alreadyStarted)
        /// The call needs a running engine.
        public static let notRunning = Code(.notRunning)
        /// A workstream thread could not be created.
        public static let threadStartFailed = Code(.threadStartFailed)

        /// The code's name.
        public var description: String { "\(value)" }
    }

    /// The kind of failure.
    public let code: Code
    /// What went wrong, for people.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The code and the message.
    public var description: String { "\(code): \(message)" }
}
