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
    /// The caller may not do this; the text says whom to ask (see
    /// [`crate::auth::Refusal`]).
    #[error("{0}")]
    Forbidden(String),
}

impl Error {
    /// Both parts are [`clip`]ped: they may echo whatever a spec holds.
    pub fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Spec {
            field: clip(&field.into()),
            message: clip(&message.into()),
        }
    }
}

/// The most characters of one word an error message echoes back.
pub const ECHO_MAX: usize = 200;

/// `text` with every word (run of non-blank characters) longer than
/// [`ECHO_MAX`] cut to that and "…": a message that echoes a 60 KB field
/// name must still say which field and what was expected, and fit in the
/// header that carries it back to the client.
pub fn clip(text: &str) -> String {
    if text.len() <= ECHO_MAX {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len().min(4 * ECHO_MAX));
    let mut run = 0;
    let mut cut = false;
    for c in text.chars() {
        if c.is_whitespace() {
            run = 0;
            cut = false;
        } else {
            run += 1;
            if run > ECHO_MAX {
                if !cut {
                    out.push('…');
                    cut = true;
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_words_are_cut_and_the_rest_is_kept() {
        let long = "x".repeat(62_000);
        let c = clip(&format!("unknown field `{long}`, expected `name`"));
        assert!(
            c.starts_with("unknown field `xxx") && c.contains("x…"),
            "{c}"
        );
        assert!(c.ends_with(" expected `name`") && c.len() < 300, "{c}");
        assert_eq!(clip("short words stay"), "short words stay");
    }
}
