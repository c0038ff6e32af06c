//! The first admin: a server whose registry holds no user makes one,
//! `admin`, with a token written to `admin.token` in its data directory
//! (mode 0600), so the person who installed it can sign in with nothing
//! to type and make everyone else's accounts.

use crate::auth::secret::{self, Kind};
use crate::{now_ms, Error};
use kiln_core::auth::audit::AuditRecord;
use kiln_core::auth::identity::{Change, Identity, Source, Token, TokenKind, User};
use kiln_core::auth::{Grant, Right};
use kiln_store::{Batch, Store};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The bootstrap admin's name.
pub const ADMIN: &str = "admin";
/// Where its token is written, in the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// Makes the first admin if there is no user yet; returns the last audit
/// id in use. The token file is written before the commit, so a crash in
/// between leaves a token that works on the next start's attempt (made
/// anew: the file is replaced).
pub async fn first_admin<S: Store>(
    dir: &Path,
    store: &S,
    identity: &mut Identity,
    last_audit: i64,
) -> Result<i64, Error> {
    if identity.users().next().is_some() {
        return Ok(last_audit);
    }
    let now = now_ms();
    let token = secret::new_token(Kind::Api)?;
    let changes = vec![
        Change::PutUser(User {
            name: ADMIN.into(),
            source: Source::Local,
            disabled: false,
            password: None,
            created_at: now,
        }),
        Change::PutGrants {
            user: ADMIN.into(),
            grants: vec![Grant::farm(Right::Admin)],
        },
        Change::PutToken(Token {
            id: token.id.clone(),
            user: ADMIN.into(),
            name: "bootstrap".into(),
            hash: token.hash.clone(),
            kind: TokenKind::Api,
            created_at: now,
            expires_at: None,
        }),
    ];
    let path = dir.join(TOKEN_FILE);
    write_secret(&path, &format!("{}\n", token.text))?;
    let audit = AuditRecord {
        id: last_audit + 1,
        at: now,
        who: "kiln server".into(),
        from: String::new(),
        action: "user create".into(),
        target: format!("user {ADMIN}"),
        outcome: format!("ok: the first admin; its token is in {}", path.display()),
    };
    store
        .commit(&Batch {
            identity: changes.clone(),
            audit: vec![audit],
            ..Batch::default()
        })
        .await?;
    for c in changes {
        identity.apply(c);
    }
    tracing::info!(
        "made the first admin, {ADMIN}; its token is in {} (KILN_TOKEN=$(cat {}) kiln whoami)",
        path.display(),
        path.display()
    );
    Ok(last_audit + 1)
}

/// Writes `text` to a new file only its owner can read, replacing `path`.
pub fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    // Beside it, named after the whole file name and this process: two
    // processes saving tokens for `127.0.0.1_7676` and `127.0.0.1_7677` at
    // once must not share a temporary file (`with_extension` would make
    // both `127.0.0.tmp`).
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::write_secret;
    use std::os::unix::fs::PermissionsExt;

    /// Tokens for two servers on one address, saved at once, each end up in
    /// its own file, whole (the CLI names them `<host>_<port>`).
    #[test]
    fn secrets_for_two_ports_of_one_address_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("127.0.0.1_7676");
        let b = dir.path().join("127.0.0.1_7677");
        std::thread::scope(|s| {
            for (path, text) in [(&a, "token-a\n"), (&b, "token-b\n")] {
                s.spawn(move || {
                    for _ in 0..300 {
                        write_secret(path, text).unwrap();
                        assert_eq!(std::fs::read_to_string(path).unwrap(), text);
                    }
                });
            }
        });
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file left behind");
    }
}
