//! Errors shared by every pelt crate below the runner.

use crate::config::ConfigError;

/// Everything that can go wrong in the library crates; the runner wraps these with file and run context.
#[derive(Debug, thiserror::Error)]
pub enum PeltError {
    /// A method or training configuration failed validation.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A method name that no registered crate provides.
    #[error("unknown method `{name}`; registered methods: {known}")]
    UnknownMethod {
        /// The name that was asked for.
        name: String,
        /// Comma-separated list of registered names.
        known: String,
    },
    /// A weight file or model folder that cannot be used.
    #[error("{path}: {message}")]
    Weights {
        /// The file or folder.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A tensor shape or site that does not fit the backbone.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A multi-task method's protocol steps called out of order (e.g. a target before any sources).
    #[error("protocol: {0}")]
    Protocol(String),
    /// An error raised inside libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An I/O error with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read or written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result alias for [`PeltError`].
pub type Result<T, E = PeltError> = std::result::Result<T, E>;
