//! The one error type of `kiln-sim`.

/// What can go wrong reading or running a scenario. Messages are shown to
/// wranglers as they are: each names the field to fix and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not a YAML or JSON document.
    #[error("scenario: {0}")]
    Syntax(String),
    /// A field of the scenario is wrong; `field` is a path such as
    /// `hosts[1].cores` or `jobs[0].layers[2].runtime`.
    #[error("{field}: {message}")]
    Scenario { field: String, message: String },
    /// The farm refused something while the scenario ran.
    #[error("the farm refused {what}: {message}")]
    Farm { what: String, message: String },
}

impl Error {
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Scenario {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
