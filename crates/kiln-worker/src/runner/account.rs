//! A supervised frame's account, looked up by its supervisor (`kiln
//! frame-shim`), never by the worker daemon; and how the daemon words the
//! supervisor's answer when the account cannot be had.
//!
//! Why the supervisor: looking an account up goes through NSS
//! (`getpwnam_r`, `getgrouplist`), which loads modules (`libnss_systemd`,
//! sssd's, an LDAP client) that stay mapped in the process for good and may
//! block on the network. In the daemon they cost its idle memory (about
//! 300 KiB of code, the 8 MB target's margin) and a hung directory service
//! would stall every frame start and the daemon's heartbeats with it; in a
//! supervisor they cost one short process, and a hung lookup stalls one
//! frame's start. Frames the daemon starts itself (no supervisor, tests and
//! embedders) are still resolved by the daemon (`prepare`).
//!
//! A supervisor that looked the job's user up records what it found in its
//! state directory; the daemon keeps that for a minute, as it kept its own
//! lookups, and hands the next frames of that user their ids and
//! environment, so a farm of one user's frames pays for one lookup a
//! minute, not one per frame (about 0.7 ms with `libnss_systemd`).
//!
//! The supervisor reports a failure as `err <step> <errno>` on its report
//! pipe, like a failed spawn step: [`Step::User`] with errno 0 is "no such
//! user" (the job's own error, point 7 of issue 10), with another errno a
//! lookup that failed (the host's); [`Step::Root`] a refused uid 0;
//! [`Step::Groups`] and [`Step::Chown`] the host's.

use super::spawn::Step;
use crate::users::{self, User};
use std::ffi::CString;
use std::path::Path;

/// `(uid, gid, groups)`.
pub(super) type Ids = (u32, u32, Vec<u32>);

/// Who the supervisor runs the frame as.
pub(super) struct Account {
    /// `(uid, gid, groups)` to switch to; `None`: the supervisor's own.
    pub(super) ids: Option<Ids>,
    /// `HOME`, `USER`, `LOGNAME`, `SHELL`, as `KEY=value`.
    vars: Vec<Vec<u8>>,
}

/// The account a supervisor runs its frame as: `ids` as the worker knew
/// them (from an earlier supervisor's [`Account::record`], the worker then
/// sets the environment), else `user` looked up here (see [`resolve`]).
pub(super) fn settle(
    ids: Option<&Ids>,
    user: Option<&str>,
    allow_root: bool,
) -> Result<Account, (Step, i32)> {
    match ids {
        Some(ids) => Ok(Account {
            ids: Some(ids.clone()),
            vars: Vec::new(),
        }),
        None => resolve(user, allow_root),
    }
}

/// `user`: the job's user, looked up and switched to; `None`: the account
/// the supervisor runs as (the worker's), for the environment only. The
/// error is the step and errno to report.
pub(super) fn resolve(user: Option<&str>, allow_root: bool) -> Result<Account, (Step, i32)> {
    let Some(name) = user else {
        let uid = unsafe { libc::getuid() };
        return Ok(match users::lookup_uid(uid) {
            Ok(Some(u)) => Account {
                ids: None,
                vars: vars(&u),
            },
            // Containers often run under a uid with no passwd entry: the
            // worker hands its own USER and HOME to the supervisor.
            _ => {
                let name = std::env::var_os("USER").unwrap_or_else(|| uid.to_string().into());
                let mut vars = Vec::new();
                if let Some(home) = std::env::var_os("HOME") {
                    vars.push(kv("HOME", home.as_encoded_bytes()));
                }
                vars.push(kv("USER", name.as_encoded_bytes()));
                vars.push(kv("LOGNAME", name.as_encoded_bytes()));
                Account { ids: None, vars }
            }
        });
    };
    let u = match users::lookup(name) {
        Ok(Some(u)) => u,
        Ok(None) => return Err((Step::User, 0)),
        Err(e) => return Err((Step::User, e.errno())),
    };
    if u.uid == 0 && !allow_root {
        return Err((Step::Root, 0));
    }
    let groups = users::groups(&u).map_err(|e| (Step::Groups, e.errno()))?;
    Ok(Account {
        ids: Some((u.uid, u.gid, groups)),
        vars: vars(&u),
    })
}

fn vars(u: &User) -> Vec<Vec<u8>> {
    vec![
        kv("HOME", u.home.as_os_str().as_encoded_bytes()),
        kv("USER", u.name.as_bytes()),
        kv("LOGNAME", u.name.as_bytes()),
        kv("SHELL", u.shell.as_os_str().as_encoded_bytes()),
    ]
}

fn kv(key: &str, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 1 + value.len());
    v.extend_from_slice(key.as_bytes());
    v.push(b'=');
    v.extend_from_slice(value);
    v
}

/// The file in a supervisor's state directory where it records the
/// account it looked up, for the worker to reuse a while (see `prepare`).
const RECORD: &str = "account";

impl Account {
    /// Records a looked-up account in the state directory `state`:
    /// `uid:gid:groups` then the variables, NUL-separated.
    pub(super) fn record(&self, state: &Path) {
        let Some((uid, gid, groups)) = &self.ids else {
            return;
        };
        let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
        let mut out = format!("{uid}:{gid}:{}", groups.join(",")).into_bytes();
        for v in &self.vars {
            out.push(0);
            out.extend_from_slice(v);
        }
        let _ = std::fs::write(state.join(RECORD), out);
    }

    /// Gives the frame's scratch directory to the user it switches to.
    pub(super) fn give(&self, dir: &Path) -> Result<(), i32> {
        let Some((uid, gid, _)) = self.ids else {
            return Ok(());
        };
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
    }

    /// The frame's environment: the account's variables, then the worker's
    /// `entries` (its base, the job's own, `KILN_*`), which win over them as
    /// they did when the worker set both.
    pub(super) fn environment(&self, entries: &[u8]) -> Vec<CString> {
        let entries: Vec<&[u8]> = entries
            .split(|&b| b == 0)
            .filter(|kv| !kv.is_empty())
            .collect();
        let key = |kv: &[u8]| kv.iter().position(|&b| b == b'=').map(|i| kv[..i].to_vec());
        let set: Vec<Vec<u8>> = entries.iter().filter_map(|kv| key(kv)).collect();
        self.vars
            .iter()
            .filter(|v| key(v).is_some_and(|k| !set.contains(&k)))
            .map(Vec::as_slice)
            .chain(entries.iter().copied())
            .filter_map(|kv| CString::new(kv).ok())
            .collect()
    }
}

/// What a supervisor recorded of the account it looked up:
/// `(uid, gid, groups)` and `(name, home, shell)`.
pub(super) fn recorded(state: &Path) -> Option<(Ids, super::prepare::Known)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = std::fs::read(state.join(RECORD)).ok()?;
    let mut fields = bytes.split(|&b| b == 0);
    let (uid, gid, groups) = parse_ids(std::str::from_utf8(fields.next()?).ok()?)?;
    let mut known = super::prepare::Known {
        uid,
        name: String::new(),
        home: None,
        shell: None,
    };
    for kv in fields {
        let eq = kv.iter().position(|&b| b == b'=')?;
        let value = std::ffi::OsStr::from_bytes(&kv[eq + 1..]).to_owned();
        match &kv[..eq] {
            b"HOME" => known.home = Some(value),
            b"USER" => known.name = value.into_string().ok()?,
            b"SHELL" => known.shell = Some(value),
            _ => {}
        }
    }
    Some(((uid, gid, groups), known))
}

/// `uid:gid:g1,g2,…`, as the supervisor's arguments and its record write
/// a frame's ids.
pub(super) fn parse_ids(s: &str) -> Option<Ids> {
    let mut p = s.splitn(3, ':');
    let uid = p.next()?.parse().ok()?;
    let gid = p.next()?.parse().ok()?;
    let groups = p
        .next()?
        .split(',')
        .filter(|g| !g.is_empty())
        .map(|g| g.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    Some((uid, gid, groups))
}

/// The frame's end when its supervisor reported an account `step` (`None`
/// for any other step): the reason, and whether it is the job's own error.
pub(super) fn failure(
    step: Step,
    e: &std::io::Error,
    user: &str,
    host: &str,
) -> Option<(String, bool)> {
    Some(match (step, e.raw_os_error().unwrap_or(0)) {
        (Step::User, 0) => (no_such_user(user, host), true),
        (Step::User, _) => (
            format!("cannot look up user {user:?}: {e} (on host {host})"),
            false,
        ),
        (Step::Root, _) => (super::prepare::ROOT_REFUSAL.to_owned(), false),
        (Step::Groups, _) => (
            format!("cannot list the groups of user {user:?}: {e}"),
            false,
        ),
        (Step::Chown, _) => (
            format!("cannot give the frame's scratch directory to user {user:?}: {e}"),
            false,
        ),
        _ => return None,
    })
}

pub(super) fn no_such_user(user: &str, host: &str) -> String {
    format!("user {user:?} does not exist on host {host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_entries_win_over_the_accounts() {
        let a = Account {
            ids: None,
            vars: vec![kv("HOME", b"/home/a"), kv("USER", b"a")],
        };
        let env = a.environment(b"PATH=/bin\0HOME=/job\0X=1\0");
        let env: Vec<&[u8]> = env.iter().map(|c| c.as_bytes()).collect();
        assert_eq!(
            env,
            [&b"USER=a"[..], b"PATH=/bin", b"HOME=/job", b"X=1"].to_vec()
        );
    }

    #[test]
    fn a_recorded_account_reads_back() {
        let a = resolve(Some("root"), true).unwrap();
        let dir = std::env::temp_dir().join(format!("kiln-account-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        a.record(&dir);
        let (ids, known) = recorded(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(Some(ids), a.ids);
        assert_eq!((known.uid, known.name.as_str()), (0, "root"));
        assert!(known.home.is_some() && known.shell.is_some());
    }

    #[test]
    fn an_unknown_user_is_the_jobs_error_a_failed_lookup_the_hosts() {
        assert!(matches!(
            resolve(Some("kiln-no-such-user-7f3a"), true),
            Err((Step::User, 0))
        ));
        let none = std::io::Error::from_raw_os_error(0);
        let (why, own) = failure(Step::User, &none, "bob", "h1").unwrap();
        assert_eq!(
            (why.as_str(), own),
            ("user \"bob\" does not exist on host h1", true)
        );
        let io = std::io::Error::from_raw_os_error(libc::EIO);
        assert!(!failure(Step::User, &io, "bob", "h1").unwrap().1);
        assert!(failure(Step::Exec, &io, "bob", "h1").is_none());
    }
}
