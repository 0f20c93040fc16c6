//! The broker's error type.

use strom_protocol::ProtocolError;

/// Errors starting, running or configuring a broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A configuration key has a bad value or is unknown.
    #[error("configuration {key}={value}: {reason}")]
    Config {
        /// The Kafka key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A configuration file could not be parsed.
    #[error("configuration file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The partition log failed.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// The wire layer failed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Stored broker metadata is unreadable.
    #[error("broker metadata {path}: {reason}")]
    Metadata {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl BrokerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BrokerError::Io {
            context: context.into(),
            source,
        }
    }
}
