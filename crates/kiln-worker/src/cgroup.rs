//! Frame process trees as cgroups: one per frame, so that killing a frame
//! kills everything it started, processes that left its process group
//! (`setsid`) or double-forked included, and so that its memory is capped
//! by the kernel. A frame is over only when its cgroup is empty.
//!
//! Which hierarchy is used is found once at startup:
//! - cgroup v2 with `cgroup.kill` (`/sys/fs/cgroup` itself, or the
//!   `unified` mount of a hybrid host) kills a tree in one write;
//! - otherwise the v1 `freezer`: freeze, SIGKILL every member, thaw,
//!   until it is empty;
//! - memory is capped by v2 `memory.max` where the v2 hierarchy has the
//!   memory controller, else by v1 `memory.limit_in_bytes`.
//!
//! v2 frames go under `<mount>/kiln/<worker>/<attempt>` (controllers are
//! enabled from the top, which v2 allows only outside a process's own leaf);
//! v1 frames under the worker's own cgroup of that hierarchy, so limits set
//! on the worker keep applying to its frames. Where none can be made the
//! runner falls back to process groups.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MOUNT: &str = "/sys/fs/cgroup";

/// How a frame's tree is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killer {
    /// v2 `cgroup.kill`.
    V2,
    /// v1 freezer: freeze, SIGKILL each, thaw.
    Freezer,
}

/// How a frame's memory is capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Memory {
    V2,
    V1,
}

/// The cgroups this worker makes its frames' cgroups in.
#[derive(Debug, Clone)]
pub struct Cgroups {
    killer: Killer,
    /// Where frames' kill cgroups go (`<attempt>` under it).
    kill_base: PathBuf,
    memory: Option<(Memory, PathBuf)>,
}

/// One frame's cgroup(s), made before it starts, removed when it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameCgroup {
    killer_v2: bool,
    /// The cgroup that holds the whole tree and kills it.
    kill_dir: PathBuf,
    /// A separate v1 memory cgroup, if memory is capped there.
    memory_dir: Option<PathBuf>,
    memory_v2: bool,
}

impl Cgroups {
    /// Finds and prepares this worker's cgroups; `Err` says why there are
    /// none (frames then run in process groups only). A worker is its name
    /// and its work directory: two workers on one host never share one.
    pub fn detect(worker: &str, work_dir: &Path) -> Result<Cgroups, String> {
        let worker = format!("{}-{:08x}", sanitize(worker), fnv(work_dir) as u32);
        let own = own_cgroups();
        let v2_mount = if Path::new(MOUNT).join("cgroup.controllers").exists() {
            Some(PathBuf::from(MOUNT))
        } else if Path::new(MOUNT).join("unified/cgroup.controllers").exists() {
            Some(Path::new(MOUNT).join("unified"))
        } else {
            None
        };
        let mut why = Vec::new();
        let mut v2 = None;
        if let Some(mount) = &v2_mount {
            match prepare_v2(mount, &worker) {
                Ok(r) => v2 = Some(r),
                Err(e) => why.push(format!("{}: {e}", mount.display())),
            }
        }
        let v1 = |controller: &str| -> Option<PathBuf> {
            let mount = Path::new(MOUNT).join(controller);
            if !mount.join("cgroup.procs").exists() || v2_mount.as_deref() == Some(&mount) {
                return None;
            }
            let own = own
                .iter()
                .find(|(c, _)| c.split(',').any(|c| c == controller));
            let rel = own.map_or("", |(_, p)| p.trim_start_matches('/'));
            let base = mount.join(rel).join("kiln").join(&worker);
            fs::create_dir_all(&base).ok()?;
            Some(base)
        };
        let (killer, kill_base, v2_memory) = match v2 {
            Some((base, memory)) => (Killer::V2, base, memory),
            None => match v1("freezer") {
                Some(base) => (Killer::Freezer, base, false),
                None => {
                    why.push("no cgroup v2 with cgroup.kill and no v1 freezer to use".into());
                    return Err(why.join("; "));
                }
            },
        };
        let memory = if v2_memory {
            Some((Memory::V2, kill_base.clone()))
        } else {
            v1("memory").map(|b| (Memory::V1, b))
        };
        let found = Cgroups {
            killer,
            kill_base,
            memory,
        };
        found.prune();
        Ok(found)
    }

    /// Removes the cgroups of workers gone without cleaning up, once they
    /// hold no frame's cgroup (a cgroup with a child or a process cannot be
    /// removed, so a live worker's frames are safe).
    fn prune(&self) {
        let bases = std::iter::once(&self.kill_base).chain(self.memory.as_ref().map(|m| &m.1));
        for base in bases {
            let Some(parent) = base.parent() else {
                continue;
            };
            for e in fs::read_dir(parent).into_iter().flatten().flatten() {
                let dir = e.path();
                // Never a frame's cgroup: one may be empty for an instant
                // before its frame joins it.
                if dir != *base && e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = fs::remove_dir(&dir);
                }
            }
        }
    }

    /// Removes this worker's own cgroups if no frame is left in them.
    pub fn remove_empty(&self) {
        for base in std::iter::once(&self.kill_base).chain(self.memory.as_ref().map(|m| &m.1)) {
            let _ = fs::remove_dir(base);
        }
    }

    /// For the startup log.
    pub fn describe(&self) -> String {
        let kill = match self.killer {
            Killer::V2 => "cgroup v2 (cgroup.kill)",
            Killer::Freezer => "cgroup v1 freezer",
        };
        let memory = match &self.memory {
            Some((Memory::V2, _)) => "memory capped by v2 memory.max".to_owned(),
            Some((Memory::V1, p)) => format!("memory capped by v1 memory in {}", p.display()),
            None => "no memory controller: memory is only sampled".to_owned(),
        };
        format!(
            "frames run in {kill} under {}; {memory}",
            self.kill_base.display()
        )
    }

    /// Makes a frame's cgroup, capped at `memory_bytes` if given. One that
    /// is left over from an earlier run is emptied first.
    pub fn create(&self, name: &str, memory_bytes: Option<u64>) -> io::Result<FrameCgroup> {
        let cg = FrameCgroup {
            killer_v2: self.killer == Killer::V2,
            kill_dir: self.kill_base.join(name),
            memory_dir: match &self.memory {
                Some((Memory::V1, base)) => Some(base.join(name)),
                _ => None,
            },
            memory_v2: matches!(self.memory, Some((Memory::V2, _))),
        };
        // Another worker's startup may have pruned this worker's own cgroup
        // while it held no frame: made again, with its controllers.
        if !self.kill_base.exists() {
            fs::create_dir_all(&self.kill_base)?;
            if cg.memory_v2 {
                fs::write(
                    self.kill_base.join("cgroup.subtree_control"),
                    "+memory +pids",
                )?;
            }
        }
        let made = cg.dirs().try_for_each(fs::create_dir_all).and_then(|()| {
            cg.kill_until_empty(Duration::from_secs(5));
            memory_bytes.map_or(Ok(()), |bytes| cg.set_memory_limit(bytes))
        });
        if let Err(e) = made {
            cg.remove();
            return Err(e);
        }
        Ok(cg)
    }
}

impl FrameCgroup {
    fn dirs(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.kill_dir.as_path()).chain(self.memory_dir.as_deref())
    }

    /// Every `cgroup.procs` the frame's process must join, open for
    /// writing (for `spawn`, whose child may not open files).
    pub fn open_procs(&self) -> io::Result<Vec<fs::File>> {
        self.dirs()
            .map(|d| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
            })
            .collect()
    }

    /// For handing to the frame's supervisor: the directories, one a line.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            format!("kill{}", if self.killer_v2 { "2" } else { "1" }),
            self.kill_dir.display().to_string(),
        ];
        if self.memory_v2 {
            v.push("mem2".into());
        }
        if let Some(m) = &self.memory_dir {
            v.push("mem1".into());
            v.push(m.display().to_string());
        }
        v
    }

    /// The reverse of [`FrameCgroup::to_args`].
    pub fn from_args(args: &[String]) -> Option<FrameCgroup> {
        let mut it = args.iter();
        let killer_v2 = match it.next()?.as_str() {
            "kill2" => true,
            "kill1" => false,
            _ => return None,
        };
        let mut cg = FrameCgroup {
            killer_v2,
            kill_dir: PathBuf::from(it.next()?),
            memory_dir: None,
            memory_v2: false,
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "mem2" => cg.memory_v2 = true,
                "mem1" => cg.memory_dir = Some(PathBuf::from(it.next()?)),
                _ => return None,
            }
        }
        Some(cg)
    }

    fn set_memory_limit(&self, bytes: u64) -> io::Result<()> {
        if self.memory_v2 {
            fs::write(self.kill_dir.join("memory.max"), bytes.to_string())?;
            // Past the limit the frame is killed, not swapped to a crawl,
            // and killed whole: a wrapper must not carry on without its
            // renderer.
            let _ = fs::write(self.kill_dir.join("memory.swap.max"), "0");
            let _ = fs::write(self.kill_dir.join("memory.oom.group"), "1");
        } else if let Some(dir) = &self.memory_dir {
            fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
            let _ = fs::write(dir.join("memory.swappiness"), "0");
        }
        Ok(())
    }

    /// The file that lists every process of the frame's tree.
    pub fn members_file(&self) -> PathBuf {
        self.kill_dir.join("cgroup.procs")
    }

    /// The processes in the frame's tree.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.kill_dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.pids().is_empty()
    }

    /// Sends `sig` to every process of the tree.
    pub fn signal(&self, sig: i32) {
        for pid in self.pids() {
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Kills the whole tree, processes forking meanwhile included.
    pub fn kill(&self) {
        if self.killer_v2 {
            if fs::write(self.kill_dir.join("cgroup.kill"), "1").is_ok() {
                return;
            }
            // Kernels before 5.14: one by one (the caller repeats until empty).
            return self.signal(libc::SIGKILL);
        }
        // Frozen, nothing can fork between the listing and the kill.
        let state = self.kill_dir.join("freezer.state");
        let frozen = fs::write(&state, "FROZEN").is_ok() && {
            let t = Instant::now();
            loop {
                match fs::read_to_string(&state) {
                    Ok(s) if s.trim() == "FROZEN" => break true,
                    Ok(_) if t.elapsed() < Duration::from_millis(500) => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    _ => break false,
                }
            }
        };
        self.signal(libc::SIGKILL);
        if frozen || state.exists() {
            let _ = fs::write(&state, "THAWED");
        }
    }

    /// Kills the tree until no process is left in it, or `limit` passes
    /// (a process stuck in the kernel); true if it is empty.
    pub fn kill_until_empty(&self, limit: Duration) -> bool {
        let t = Instant::now();
        loop {
            if self.is_empty() {
                return true;
            }
            if t.elapsed() > limit {
                return false;
            }
            self.kill();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many times the kernel's OOM killer struck inside the cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = if self.memory_v2 {
            (self.kill_dir.join("memory.events"), "oom_kill")
        } else if let Some(dir) = &self.memory_dir {
            (dir.join("memory.oom_control"), "oom_kill")
        } else {
            return 0;
        };
        fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
            .unwrap_or(0)
    }

    /// Removes the (empty) cgroups; a cgroup still busy is left in place.
    pub fn remove(&self) {
        for dir in self.dirs() {
            for _ in 0..50 {
                match fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Makes `<mount>/kiln/<worker>` and enables memory (and pids) for frames
/// where the hierarchy has them. Fails unless `cgroup.kill` is there.
fn prepare_v2(mount: &Path, worker: &str) -> io::Result<(PathBuf, bool)> {
    let top = mount.join("kiln");
    let base = top.join(worker);
    fs::create_dir_all(&base)?;
    if !base.join("cgroup.kill").exists() {
        return Err(io::Error::other("no cgroup.kill (kernel before 5.14)"));
    }
    let available = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let memory = available.split_whitespace().any(|c| c == "memory");
    if memory {
        for dir in [mount, &top, &base] {
            let _ = fs::write(dir.join("cgroup.subtree_control"), "+memory +pids");
        }
    }
    let enabled = fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
    Ok((base, enabled.split_whitespace().any(|c| c == "memory")))
}

/// `(controllers, path)` of each hierarchy this process belongs to.
fn own_cgroups() -> Vec<(String, String)> {
    fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

fn fnv(p: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let p = fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    p.as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf29ce484222325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        })
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => "worker".into(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_cgroups_round_trip_through_args() {
        let cg = FrameCgroup {
            killer_v2: false,
            kill_dir: "/sys/fs/cgroup/freezer/kiln/w/7".into(),
            memory_dir: Some("/sys/fs/cgroup/memory/x/kiln/w/7".into()),
            memory_v2: false,
        };
        assert_eq!(FrameCgroup::from_args(&cg.to_args()), Some(cg));
        assert_eq!(sanitize("a/b c"), "a_b_c");
        assert_eq!(sanitize(".."), "worker");
    }
}
