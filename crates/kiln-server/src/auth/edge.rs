//! The gate every call passes: the credential a caller presented, checked
//! against the identity registry as last committed, becomes a
//! [`Principal`], or the call ends here with "not logged in".
//!
//! The applier owns the registry and publishes a new snapshot after each
//! commit that changed it, before it answers that commit's calls: so a
//! revoked token or a disabled user is refused from the very next call.

use super::secret::{self, Kind};
use kiln_api::Error;
use kiln_core::auth::identity::{Identity, Rejected};
use kiln_core::auth::{Credentials, Principal};
use std::sync::{Arc, RwLock};

/// The registry as last committed, shared by the applier and the edges.
#[derive(Clone, Default)]
pub struct Gate {
    now: Arc<RwLock<Arc<Identity>>>,
}

/// What a refused caller is told; the precise reason goes to the log.
fn refused(r: &Rejected) -> Error {
    match r {
        Rejected::Expired => Error::Unauthenticated(
            "your token expired: sign in again (`kiln login URL`) or make a new token".into(),
        ),
        Rejected::Disabled(u) => Error::Unauthenticated(format!(
            "user {u} is disabled: ask an admin (`kiln user enable {u}`)"
        )),
        Rejected::JoinToken => Error::Unauthenticated(
            "that is a worker join token: give it to `kiln worker --join`, not to the CLI".into(),
        ),
        Rejected::Unknown | Rejected::Join(_) => {
            Error::Unauthenticated("the token is unknown or was revoked: sign in again".into())
        }
    }
}

impl Gate {
    pub fn new(identity: Identity) -> Gate {
        Gate {
            now: Arc::new(RwLock::new(Arc::new(identity))),
        }
    }

    /// The registry as last committed.
    pub fn identity(&self) -> Arc<Identity> {
        self.now.read().expect("gate lock").clone()
    }

    pub(crate) fn publish(&self, identity: Identity) {
        *self.now.write().expect("gate lock") = Arc::new(identity);
    }

    /// The user behind an API or session token.
    pub fn user(&self, c: &Credentials, now: i64) -> Result<Principal, Error> {
        let Some(bearer) = &c.bearer else {
            return Err(Error::Unauthenticated(
                "the call carried no token: sign in with `kiln login URL`, or set KILN_TOKEN"
                    .into(),
            ));
        };
        let p = secret::parse(bearer).ok_or_else(|| {
            Error::Unauthenticated(
                "that is not a Kiln token (they read kiln_api_…): sign in again".into(),
            )
        })?;
        if p.kind == Kind::Host {
            return Err(Error::Unauthenticated(
                "that is a host's credential: it only runs `kiln worker`".into(),
            ));
        }
        self.identity().principal(&p.id, &p.hash, now).map_err(|r| {
            tracing::info!(from = %c.from_text(), token = %p.id, "refused a call: {r}");
            refused(&r)
        })
    }

    /// The worker behind a host credential, for the link of `host`.
    pub fn worker(&self, c: &Credentials, host: &str) -> Result<Principal, Error> {
        let enroll = || {
            format!(
                "host {host:?} is not enrolled here: make a join token (`kiln token create --worker`) \
                 and start the worker with `--join TOKEN`"
            )
        };
        let Some(p) = c.bearer.as_deref().and_then(secret::parse) else {
            return Err(Error::Unauthenticated(enroll()));
        };
        if p.kind != Kind::Host {
            return Err(Error::Unauthenticated(enroll()));
        }
        self.identity()
            .worker(host, &p.hash)
            .map_err(|_| Error::Unauthenticated(format!(
                "the credential is not the one host {host:?} was enrolled with (or it was removed with `kiln host remove`); \
                 if this machine is {host}, enroll it again with a join token"
            )))
    }
}
