//! Everything a frame needs settled before it can be started: whose account
//! it runs as, where it runs, which GPUs it gets and where its output goes.
//! Failures here become the frame's `FailedToStart` reason, so they name the
//! host and the thing that is missing.

use super::{Inner, Launch};
use crate::users;
use kiln_core::model::AttemptId;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a resolved account is trusted; unknown users are not cached, so
/// a user added to the host works at once.
const USER_CACHE_TTL: Duration = Duration::from_secs(60);

pub(super) const ROOT_REFUSAL: &str =
    "refusing to run as root (uid 0): start the worker with --allow-root to allow it";

/// Who a frame runs as.
#[derive(Clone)]
pub(super) struct Identity {
    /// `(uid, gid, groups)` the child switches to; `None`: the worker's own
    /// (or, under a supervisor, whatever the supervisor looks up).
    pub(super) switch: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    /// The account whose name, home and shell go into the frame's
    /// environment; `None` under a supervisor, which looks the account up
    /// itself (see `account`) so that NSS never loads into the worker.
    pub(super) known: Option<Known>,
    /// Under a supervisor, the job's user it looks up and switches to.
    pub(super) switch_to: Option<String>,
}

#[derive(Clone)]
pub(super) struct Known {
    pub(super) uid: u32,
    pub(super) name: String,
    pub(super) home: Option<OsString>,
    pub(super) shell: Option<OsString>,
}

/// What is known of a frame being started, for its log and its cleanup.
pub(super) struct Prepared {
    pub(super) identity: Identity,
    pub(super) cwd: PathBuf,
    /// The scratch directory to remove afterwards.
    pub(super) scratch: Option<PathBuf>,
    pub(super) gpus: Vec<u32>,
}

impl Inner {
    fn identity(&self, user: &str) -> Result<Identity, String> {
        let host = &self.cfg.host_name;
        if self.cfg.shim.is_some() {
            return self.supervisor_identity(user);
        }
        if self.cfg.switch_user {
            let now = std::time::Instant::now();
            if let Some((at, id)) = self.lock().users.get(user) {
                if now.duration_since(*at) < USER_CACHE_TTL {
                    return Ok(id.clone());
                }
            }
            let u = match users::lookup(user) {
                Ok(Some(u)) => u,
                Ok(None) => return Err(super::account::no_such_user(user, host)),
                Err(e) => return Err(format!("{e} (on host {host})")),
            };
            if u.uid == 0 && !self.cfg.allow_root {
                return Err(ROOT_REFUSAL.to_owned());
            }
            let groups = users::groups(&u).map_err(|e| e.to_string())?;
            let id = Identity {
                switch: Some((u.uid, u.gid, groups)),
                known: Some(Known {
                    uid: u.uid,
                    name: u.name,
                    home: Some(u.home.into_os_string()),
                    shell: Some(u.shell.into_os_string()),
                }),
                switch_to: None,
            };
            let mut st = self.lock();
            st.users
                .retain(|_, (at, _)| now.duration_since(*at) < USER_CACHE_TTL);
            st.users.insert(user.to_owned(), (now, id.clone()));
            Ok(id)
        } else {
            let euid = unsafe { libc::geteuid() };
            if euid == 0 && !self.cfg.allow_root {
                return Err(ROOT_REFUSAL.to_owned());
            }
            let own = self
                .own_user
                .get_or_init(|| users::lookup_uid(euid).ok().flatten());
            let known = match own {
                Some(u) => Known {
                    uid: euid,
                    name: u.name.clone(),
                    home: Some(u.home.clone().into_os_string()),
                    shell: Some(u.shell.clone().into_os_string()),
                },
                // Containers often run under a uid with no passwd entry.
                None => Known {
                    uid: euid,
                    name: std::env::var("USER").unwrap_or_else(|_| euid.to_string()),
                    home: std::env::var_os("HOME"),
                    shell: None,
                },
            };
            Ok(Identity {
                switch: None,
                known: Some(known),
                switch_to: None,
            })
        }
    }

    /// A supervised frame's identity: the supervisor looks the account up
    /// (see `account`); here only what needs no lookup is checked.
    fn supervisor_identity(&self, user: &str) -> Result<Identity, String> {
        if self.cfg.switch_user {
            // No account has such a name; the supervisor could not be told it.
            if user.contains('\0') {
                return Err(super::account::no_such_user(user, &self.cfg.host_name));
            }
            // What a supervisor looked up lately (see `remember_account`).
            if let Some((at, id)) = self.lock().users.get(user) {
                if at.elapsed() < USER_CACHE_TTL {
                    return Ok(id.clone());
                }
            }
        } else if unsafe { libc::geteuid() } == 0 && !self.cfg.allow_root {
            return Err(ROOT_REFUSAL.to_owned());
        }
        Ok(Identity {
            switch: None,
            known: None,
            switch_to: self.cfg.switch_user.then(|| user.to_owned()),
        })
    }

    /// Keeps the account the supervisor in `state` looked up for `user`,
    /// so that the next frames of that user skip the lookup for a while,
    /// as frames without a supervisor do. Returns the ids it switched to.
    pub(super) fn remember_account(&self, user: &str, state: &Path) -> Option<super::account::Ids> {
        let (ids, known) = super::account::recorded(state)?;
        let id = Identity {
            switch: Some(ids.clone()),
            known: Some(known),
            switch_to: None,
        };
        let now = std::time::Instant::now();
        let mut st = self.lock();
        st.users
            .retain(|_, (at, _)| now.duration_since(*at) < USER_CACHE_TTL);
        st.users.insert(user.to_owned(), (now, id));
        Some(ids)
    }

    /// `/dev/null`, opened once, for frames' stdin.
    pub(super) fn dev_null(&self) -> Result<RawFd, String> {
        let fd = self.dev_null.get_or_init(|| {
            let f = File::open("/dev/null").ok()?;
            stdio_source(&f).ok()
        });
        fd.as_ref()
            .map(|f| f.as_raw_fd())
            .ok_or_else(|| "cannot open /dev/null".to_owned())
    }

    fn take_gpus(&self, attempt: AttemptId, n: u32) -> Result<Vec<u32>, String> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut st = self.lock();
        let free: Vec<u32> = (0..st.gpu_busy.len() as u32)
            .filter(|&i| !st.gpu_busy[i as usize])
            .take(n as usize)
            .collect();
        if free.len() < n as usize {
            return Err(format!(
                "{n} GPUs granted but only {} of {} are free on host {}",
                free.len(),
                st.gpu_busy.len(),
                self.cfg.host_name
            ));
        }
        for &g in &free {
            st.gpu_busy[g as usize] = true;
        }
        if let Some(slot) = st.frames.get_mut(&attempt) {
            slot.gpus = free.clone();
        }
        Ok(free)
    }
}

/// Resolves the user, the working directory and the GPUs. On failure, the
/// reason and any scratch directory already made.
pub(super) fn prepare(inner: &Inner, l: &Launch) -> Result<Prepared, (String, Option<PathBuf>)> {
    let identity = inner.identity(&l.user).map_err(|r| (r, None))?;
    let (cwd, scratch) = match &l.cwd {
        Some(dir) => {
            if !dir.is_dir() {
                return Err((
                    format!(
                        "working directory {} does not exist on host {}",
                        dir.display(),
                        inner.cfg.host_name
                    ),
                    None,
                ));
            }
            (dir.clone(), None)
        }
        None => {
            let dir = make_scratch(&inner.cfg.work_dir, l.attempt, identity.switch.as_ref())
                .map_err(|e| (e, None))?;
            (dir.clone(), Some(dir))
        }
    };
    let gpus = match inner.take_gpus(l.attempt, l.gpus) {
        Ok(g) => g,
        Err(e) => return Err((e, scratch)),
    };
    Ok(Prepared {
        identity,
        cwd,
        scratch,
        gpus,
    })
}

fn make_scratch(
    work_dir: &Path,
    attempt: AttemptId,
    switch: Option<&(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
) -> Result<PathBuf, String> {
    let frames = work_dir.join("frames");
    let dir = frames.join(attempt.to_string());
    // frames/ must be searchable by every job's user.
    let made = std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .mode(0o755)
                .recursive(true)
                .create(&dir),
            // Left by a worker that died mid-frame; reuse it.
            std::io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
            _ => Err(e),
        });
    if let Err(e) = made {
        return Err(format!(
            "cannot make scratch directory {}: {e}",
            dir.display()
        ));
    }
    if let Some((uid, gid, _)) = switch {
        std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).map_err(|e| {
            format!(
                "cannot give scratch directory {} to uid {uid}: {e}",
                dir.display()
            )
        })?;
    }
    Ok(dir)
}

pub(super) fn open_log(path: &Path) -> std::io::Result<File> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            // Appends land at the end even if a stray process still writes.
            .custom_flags(libc::O_APPEND)
            .mode(0o644)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            open()
        }
        r => r,
    }
}

/// The log as a descriptor above 0-2, so that setting up the child's
/// stdin, stdout and stderr cannot overwrite it (a daemon may have closed
/// its own stdio, and then opens files at 0-2).
pub(super) fn stdio_source(log: &File) -> std::io::Result<OwnedFd> {
    let fd = unsafe { libc::fcntl(log.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
