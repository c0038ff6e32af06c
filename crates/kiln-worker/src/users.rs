//! Looks up the host's Unix accounts, so frames can run as their job's user.
//!
//! Goes through libc's reentrant calls (`getpwnam_r`, `getgrouplist`) rather
//! than reading `/etc/passwd`, so NSS sources such as LDAP or SSSD work too.
//! These calls may block on the network: call them off the async runtime.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A Unix account, as the frame runner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("cannot look up user {name:?}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list the groups of user {name:?}: {source}")]
    Groups {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

impl UserError {
    /// The error as an errno (EINVAL where it has none), for a frame
    /// supervisor to report.
    pub fn errno(&self) -> i32 {
        let (UserError::Lookup { source, .. } | UserError::Groups { source, .. }) = self;
        source.raw_os_error().unwrap_or(libc::EINVAL)
    }
}

/// The account named `name`, or `None` if the host has no such user.
pub fn lookup(name: &str) -> Result<Option<User>, UserError> {
    // A name with a NUL byte cannot name an account.
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    getpw(name, |pwd, buf, result| unsafe {
        libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result)
    })
}

/// The account with user id `uid`, or `None` if no account has it.
pub fn lookup_uid(uid: u32) -> Result<Option<User>, UserError> {
    getpw(&format!("#{uid}"), |pwd, buf, result| unsafe {
        libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result)
    })
}

/// The user's supplementary groups, primary group included, as `initgroups`
/// would set them. Resolved before fork because `getgrouplist` is not
/// async-signal-safe; the child then only calls `setgroups`.
pub fn groups(user: &User) -> Result<Vec<libc::gid_t>, UserError> {
    let err = |source| UserError::Groups {
        name: user.name.clone(),
        source,
    };
    let cname = CString::new(user.name.as_str())
        .map_err(|_| err(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut n = groups.len() as libc::c_int;
        let rc = unsafe {
            libc::getgrouplist(
                cname.as_ptr(),
                user.gid as libc::gid_t,
                groups.as_mut_ptr(),
                &mut n,
            )
        };
        if rc >= 0 {
            groups.truncate(rc.max(0) as usize);
            return Ok(groups);
        }
        // -1 with `n` raised to the size needed; guard against a libc that
        // does not raise it, and against an endless loop.
        let want = (n.max(0) as usize).max(groups.len() * 2);
        if want > 65_536 {
            return Err(err(std::io::Error::other("too many groups")));
        }
        groups.resize(want, 0);
    }
}

fn getpw(
    name: &str,
    call: impl Fn(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> libc::c_int,
) -> Result<Option<User>, UserError> {
    let suggested = unsafe { libc::sysconf(libc::_SC_GETPW_R_SIZE_MAX) };
    let mut size = if suggested > 0 {
        suggested as usize
    } else {
        1024
    };
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; size];
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, &mut buf, &mut result);
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if rc == libc::EINTR {
            continue;
        }
        if !result.is_null() {
            // SAFETY: on success every pointer in `pwd` points into `buf`,
            // which is still alive here.
            return Ok(Some(unsafe { user_from(&pwd) }));
        }
        return match rc {
            // getpwnam_r(3): these are how some NSS modules say "not found".
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            e => Err(UserError::Lookup {
                name: name.to_owned(),
                source: std::io::Error::from_raw_os_error(e),
            }),
        };
    }
}

unsafe fn user_from(pwd: &libc::passwd) -> User {
    let bytes = |p: *const libc::c_char| -> &[u8] {
        if p.is_null() {
            b""
        } else {
            unsafe { CStr::from_ptr(p) }.to_bytes()
        }
    };
    User {
        name: String::from_utf8_lossy(bytes(pwd.pw_name)).into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: PathBuf::from(OsStr::from_bytes(bytes(pwd.pw_dir))),
        shell: PathBuf::from(OsStr::from_bytes(bytes(pwd.pw_shell))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists() {
        let root = lookup("root").unwrap().expect("every Linux host has root");
        assert_eq!(root.uid, 0);
        assert_eq!(lookup_uid(0).unwrap().unwrap().name, "root");
        assert!(groups(&root).unwrap().contains(&0));
    }

    #[test]
    fn unknown_user_is_none() {
        assert_eq!(lookup("kiln-no-such-user-7f3a").unwrap(), None);
        assert_eq!(lookup("bad\0name").unwrap(), None);
    }
}
