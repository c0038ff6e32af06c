//! Process plumbing the daemon's runner and the frame supervisor (`shim`)
//! share: waiting for and reaping a process without losing it to EINTR,
//! its CPU time, pidfds, and the C strings and pointer arrays `spawn`
//! takes. (Signalling a frame's whole tree is [`super::tree::Tree`]'s.)

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// `wait4`, again after EINTR: the wait status and resource usage (the
/// children it reaped included); `Ok(None)` with `WNOHANG` while `pid` runs.
pub(super) fn wait4(pid: i32, flags: libc::c_int) -> io::Result<Option<(i32, libc::rusage)>> {
    loop {
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        match unsafe { libc::wait4(pid, &mut status, flags, &mut ru) } {
            0 => return Ok(None),
            rc if rc == pid => return Ok(Some((status, ru))),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// User and system CPU time of a reaped process, in ms.
pub(super) fn cpu_ms(ru: &libc::rusage) -> u64 {
    let ms = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1000 + t.tv_usec.max(0) as u64 / 1000;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

/// A descriptor that becomes readable when `pid` exits; `None` on kernels
/// before 5.3 (ENOSYS), whose callers fall back to a blocking wait.
pub(super) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `s` as a C string; empty if it holds a NUL (exec then fails on it).
pub(super) fn cstring(s: &OsStr) -> CString {
    CString::new(s.as_bytes()).unwrap_or_default()
}

/// The NULL-terminated array of pointers an argv or envp is; `v` must
/// outlive it.
pub(super) fn nul_terminated(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}
