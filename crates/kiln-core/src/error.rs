//! The one error type of `kiln-core`.

/// Errors the domain reports. Every message names what was wrong and, where
/// there is one, the fix; they are shown to users as they are.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A job spec was rejected; `field` is a path such as `layers[1].frames`.
    #[error("{field}: {message}")]
    Spec { field: String, message: String },
    /// Something the request named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is well formed but cannot be done in the current state.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Spec {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
