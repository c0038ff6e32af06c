//! The store's one error type.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store operation failed. Absence is not an error: lookups return
/// `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory that should hold the database could not be made.
    #[error("cannot create store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The database refused or failed a statement: IO, a constraint (such as
    /// two hosts with one name, or a reference to a record never stored), a
    /// lock held too long, a value that does not decode.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),

    /// The schema could not be brought up to date, e.g. the database was
    /// written by a newer Kiln.
    #[error("schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A field that cannot be written as JSON; the record types make this
    /// unreachable today, but the serializer's signature admits it.
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// An unsigned value too large for the database's signed 64-bit integers.
    #[error("{what} is {value}, beyond what the store can hold (2^63 - 1)")]
    OutOfRange { what: &'static str, value: u64 },

    /// A stored value that does not read back as a valid record field, e.g.
    /// an unknown enum name or malformed JSON written by hand.
    #[error("{table} row {id}, column {column}: {detail}")]
    Corrupt {
        table: &'static str,
        id: i64,
        column: String,
        detail: String,
    },

    /// A stored structure record (facility, allocation, show, ...) that
    /// does not read back, e.g. JSON edited by hand.
    #[error("structure row {kind} {key:?}: {detail}")]
    CorruptStructure {
        kind: String,
        key: String,
        detail: String,
    },
    /// An identity row (user, grants, token, host credential) does not
    /// read back.
    #[error("identity row {kind} {key:?}: {detail}")]
    CorruptIdentity {
        kind: String,
        key: String,
        detail: String,
    },
}

impl Error {
    /// Whether the failure is the data directory's (full, read-only,
    /// failing, forbidden) rather than a fault in what was written.
    pub fn is_disk_failure(&self) -> bool {
        match self {
            Error::CreateDir { .. } => true,
            Error::Database(sqlx::Error::Io(_)) => true,
            Error::Database(sqlx::Error::Database(e)) => {
                // SQLite's primary result codes (the low byte of an
                // extended one): PERM, READONLY, IOERR, CANTOPEN, FULL.
                let code = e.code().and_then(|c| c.parse::<i32>().ok());
                matches!(code.map(|c| c & 0xff), Some(3 | 8 | 10 | 13 | 14))
            }
            _ => false,
        }
    }
}
