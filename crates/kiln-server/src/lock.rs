//! One server per data directory: an exclusive `flock` on `kiln.lock`,
//! held for the server's life and released by the kernel when it exits,
//! however it exits. Two servers on one store would both hand out the same
//! ids and overwrite each other's commits.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The held lock; dropping it (closing the file) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the data directory's lock and writes this process's id into it.
pub fn lock(dir: &Path) -> Result<DataDirLock, crate::Error> {
    let path = dir.join("kiln.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err.into());
        }
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(crate::Error::DataDirInUse {
            dir: dir.display().to_string(),
            pid: if pid.is_empty() {
                "unknown".into()
            } else {
                pid.into()
            },
        });
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_all()?;
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_dropped_one_frees_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err().to_string();
        let me = std::process::id().to_string();
        assert!(
            err.contains("is in use by another kiln server") && err.contains(&me),
            "{err}"
        );
        drop(held);
        lock(dir.path()).unwrap();
    }
}
