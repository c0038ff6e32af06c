//! Kiln's wire protocol: the generated gRPC code, its conversions to and from
//! domain types, and thin client and server adapters. No other crate sees a
//! protobuf type: servers implement `kiln_api`'s `FarmApi` and
//! `WorkerLinkApi` in domain terms, clients use [`client::Client`]
//! and [`client::connect_worker`].

pub mod client;
pub mod conn;
mod convert;
mod inflight;
pub mod server;
pub mod tls;

/// The response metadata of `Events` that says the number the stream
/// starts after (absent for a start by time): a client cut off before
/// any event came resumes after it.
pub const EVENTS_FROM: &str = "kiln-events-from";

/// The generated code. Public for tools that want raw access (tests, other
/// languages' conformance checks); Kiln's own crates go through the adapters.
pub mod pb {
    tonic::include_proto!("kiln.v1");
}

/// Errors as they cross the wire, mapped to and from gRPC status codes.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request was rejected; the message names the field and the fix.
    #[error("{0}")]
    Invalid(String),
    /// The server went away or did not answer: the request may or may not
    /// have been carried out.
    #[error("{0}")]
    Unavailable(String),
    /// The server could not be reached: the request was never sent.
    #[error("{0}")]
    Unreached(String),
    /// The server's certificate is not trusted (or not for this name): the
    /// request was never sent; the message says which `--ca` to pass.
    #[error("{0}")]
    Untrusted(String),
    /// The call carried no credential the server accepts; the message says
    /// how to sign in.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this; the message says whom to ask.
    #[error("{0}")]
    Forbidden(String),
    /// The server failed; the message says how.
    #[error("{0}")]
    Internal(String),
    /// The server sent something this version cannot read.
    #[error("malformed message from the peer: {0}")]
    Malformed(String),
}

/// The most bytes of message a status carries: it travels in an HTTP/2
/// header, and one over the peer's limit turns into "h2 protocol error".
const STATUS_MESSAGE_MAX: usize = 4096;

/// A message fit for a status header: long echoed words clipped, the
/// whole capped.
fn edge(m: String) -> String {
    let mut m = kiln_core::error::clip(&m);
    if m.len() > STATUS_MESSAGE_MAX {
        let mut end = STATUS_MESSAGE_MAX;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
        m.push('…');
    }
    m
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let e = match e {
            Error::NotFound(m) => Error::NotFound(edge(m)),
            Error::Invalid(m) => Error::Invalid(edge(m)),
            Error::Unavailable(m) => Error::Unavailable(edge(m)),
            Error::Unreached(m) => Error::Unreached(edge(m)),
            Error::Internal(m) => Error::Internal(edge(m)),
            Error::Untrusted(m) => Error::Untrusted(edge(m)),
            Error::Malformed(m) => Error::Malformed(edge(m)),
            Error::Unauthenticated(m) => Error::Unauthenticated(edge(m)),
            Error::Forbidden(m) => Error::Forbidden(edge(m)),
        };
        match e {
            Error::NotFound(m) => tonic::Status::not_found(m),
            Error::Invalid(m) => tonic::Status::invalid_argument(m),
            Error::Unavailable(m) | Error::Unreached(m) | Error::Untrusted(m) => {
                tonic::Status::unavailable(m)
            }
            Error::Internal(m) => tonic::Status::internal(m),
            Error::Malformed(m) => tonic::Status::invalid_argument(m),
            Error::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            Error::Forbidden(m) => tonic::Status::permission_denied(m),
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let m = s.message().to_string();
        // A status with a source was made on this side from a transport
        // error, not sent by the server: whatever its code, the server's
        // answer is unknown, unless the connection was refused outright.
        if let Some(source) = std::error::Error::source(&s) {
            // What a plaintext client gets from a TLS server.
            let m = if m.contains("h2 protocol error") {
                format!("{m} (a server that uses TLS needs an https:// URL)")
            } else {
                m
            };
            return if refused(source) {
                Error::Unreached(m)
            } else {
                Error::Unavailable(m)
            };
        }
        match s.code() {
            tonic::Code::NotFound => Error::NotFound(m),
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => Error::Invalid(m),
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
                Error::Unavailable(m)
            }
            tonic::Code::Unauthenticated => Error::Unauthenticated(m),
            tonic::Code::PermissionDenied => Error::Forbidden(m),
            _ => Error::Internal(m),
        }
    }
}

/// Whether a transport error is a refused connection, somewhere down its
/// chain of causes: nothing was sent.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(e);
    while let Some(err) = e {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        e = err.source();
    }
    false
}

impl From<kiln_core::Error> for Error {
    fn from(e: kiln_core::Error) -> Self {
        kiln_api::Error::from(e).into()
    }
}

impl From<kiln_api::Error> for Error {
    fn from(e: kiln_api::Error) -> Self {
        use kiln_api::Error as A;
        match e {
            A::NotFound(m) => Error::NotFound(m),
            A::Invalid(m) => Error::Invalid(m),
            A::Unavailable(m) => Error::Unavailable(m),
            A::Unauthenticated(m) => Error::Unauthenticated(m),
            A::Forbidden(m) => Error::Forbidden(m),
            A::Internal(m) => Error::Internal(m),
        }
    }
}

/// What a worker's stream brought, for the domain: a message this version
/// cannot read is the peer's invalid request; a transport failure, the
/// peer being unavailable.
impl From<Error> for kiln_api::Error {
    fn from(e: Error) -> Self {
        use kiln_api::Error as A;
        match e {
            Error::NotFound(m) => A::NotFound(m),
            Error::Invalid(m) => A::Invalid(m),
            Error::Malformed(m) => A::Invalid(format!("malformed message from the peer: {m}")),
            Error::Unavailable(m) | Error::Unreached(m) | Error::Untrusted(m) => A::Unavailable(m),
            Error::Unauthenticated(m) => A::Unauthenticated(m),
            Error::Forbidden(m) => A::Forbidden(m),
            Error::Internal(m) => A::Internal(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
