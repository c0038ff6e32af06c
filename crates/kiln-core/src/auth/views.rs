//! The identity API in domain terms: what callers ask of users, grants and
//! tokens, and what they get back. Every adapter converts these at its edge.

use super::identity::{JoinRules, Source};
use super::Grant;
use crate::model::Millis;
use serde::Serialize;

/// The caller, as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub user: String,
    pub grants: Vec<Grant>,
    pub source: Source,
}

/// A sign-in's result: a session token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LoggedIn {
    pub user: String,
    pub token: String,
    pub expires_at: Option<Millis>,
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub name: String,
    pub source: Source,
    pub disabled: bool,
    pub grants: Vec<Grant>,
    pub created_at: Millis,
    pub has_password: bool,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub name: String,
    /// `api`, `session` or `join`.
    pub kind: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    /// A join token's rules.
    pub join: Option<JoinRules>,
}

/// A change to users, grants, tokens or host credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityCmd {
    /// A local user; with a password it can `kiln login` with it.
    CreateUser {
        name: String,
        password: Option<String>,
    },
    SetDisabled {
        name: String,
        disabled: bool,
    },
    Grant {
        user: String,
        grant: Grant,
    },
    Revoke {
        user: String,
        grant: Grant,
    },
    SetPassword {
        user: String,
        password: String,
    },
    /// An API token (for the caller, or `user`), or with `join` a worker
    /// join token.
    CreateToken {
        name: String,
        user: Option<String>,
        expires_in: Option<Millis>,
        join: Option<JoinRules>,
    },
    /// By id, or by name among the caller's own tokens.
    RevokeToken(String),
    /// Revokes a host's credential and closes its link.
    RemoveHost(String),
}

/// What an identity change did: a line, and the token it made, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct IdentityDone {
    pub message: String,
    pub token: Option<String>,
    pub token_id: Option<String>,
}
