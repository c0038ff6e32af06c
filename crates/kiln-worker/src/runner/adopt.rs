//! Frames that outlive their worker: what the daemon records next to each
//! frame supervisor (`<work_dir>/shims/<attempt>/launch`), and how a worker
//! that starts takes over the frames an earlier run of itself left, so that
//! restarting the daemon does not kill running frames. A frame whose
//! supervisor is alive is adopted and runs on; one whose supervisor has
//! ended is reported as it ended; anything else is killed.

use super::shim::is_shim_of;
use super::supervise::{sample_loop, supervise, Running};
use super::tree::Tree;
use super::{Runner, Slot, Usage};
use crate::cgroup::FrameCgroup;
use kiln_core::model::AttemptId;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// What the end of a frame needs that only its launch knew.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Meta {
    pub log: PathBuf,
    pub started_ms: u64,
    pub timeout_ms: Option<u64>,
    pub memory_limit_kb: Option<u64>,
    pub scratch: Option<PathBuf>,
    pub gpus: Vec<u32>,
    /// Its declared outputs, as named and where they are on this host: a
    /// worker that adopts the frame checks them when it ends.
    pub outputs: Vec<(String, PathBuf)>,
}

impl Meta {
    pub(super) fn write(&self, state: &Path) -> std::io::Result<()> {
        let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        let gpus: Vec<String> = self.gpus.iter().map(u32::to_string).collect();
        // Paths last: they may hold spaces.
        let text = format!(
            "{} {} {} {}\n{}\n{}\n",
            self.started_ms,
            if opt(self.timeout_ms).is_empty() {
                "-".into()
            } else {
                opt(self.timeout_ms)
            },
            if opt(self.memory_limit_kb).is_empty() {
                "-".into()
            } else {
                opt(self.memory_limit_kb)
            },
            if gpus.is_empty() {
                "-".into()
            } else {
                gpus.join(",")
            },
            self.log.display(),
            self.scratch
                .as_ref()
                .map_or(String::new(), |s| s.display().to_string()),
        );
        std::fs::write(state.join("launch"), text)?;
        if self.outputs.is_empty() {
            return match std::fs::remove_file(state.join("outputs")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        // NUL-separated: a path holds anything else (never a NUL).
        use std::os::unix::ffi::OsStrExt;
        let mut list = Vec::new();
        for (name, full) in &self.outputs {
            list.extend_from_slice(name.as_bytes());
            list.push(0);
            list.extend_from_slice(full.as_os_str().as_bytes());
            list.push(0);
        }
        std::fs::write(state.join("outputs"), list)
    }

    fn read_outputs(state: &Path) -> Vec<(String, PathBuf)> {
        use std::os::unix::ffi::OsStrExt;
        let Ok(bytes) = std::fs::read(state.join("outputs")) else {
            return Vec::new();
        };
        let fields: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
        fields
            .chunks_exact(2)
            .filter_map(|p| {
                let name = std::str::from_utf8(p[0]).ok()?.to_owned();
                Some((name, PathBuf::from(std::ffi::OsStr::from_bytes(p[1]))))
            })
            .collect()
    }

    fn read(state: &Path) -> Option<Meta> {
        let text = std::fs::read_to_string(state.join("launch")).ok()?;
        let mut lines = text.lines();
        let mut w = lines.next()?.split_whitespace();
        let num = |s: &str| (s != "-").then(|| s.parse().ok()).flatten();
        let started_ms = w.next()?.parse().ok()?;
        let timeout_ms = num(w.next()?);
        let memory_limit_kb = num(w.next()?);
        let gpus = match w.next()? {
            "-" => Vec::new(),
            g => g
                .split(',')
                .map(|g| g.parse().ok())
                .collect::<Option<_>>()?,
        };
        let log = PathBuf::from(lines.next()?);
        let scratch = lines.next().filter(|s| !s.is_empty()).map(PathBuf::from);
        Some(Meta {
            log,
            started_ms,
            timeout_ms,
            memory_limit_kb,
            scratch,
            gpus,
            outputs: Meta::read_outputs(state),
        })
    }
}

/// A supervisor's record of its frame: `(supervisor pid, frame pid, cgroup)`.
fn read_pids(state: &Path) -> Option<(i32, i32, Option<FrameCgroup>)> {
    let text = std::fs::read_to_string(state.join("pids")).ok()?;
    let mut lines = text.lines();
    let mut ids = lines.next()?.split_whitespace();
    let shim = ids.next()?.parse().ok()?;
    let frame = ids.next()?.parse().ok()?;
    let args: Vec<String> = lines.map(str::to_owned).collect();
    Some((shim, frame, FrameCgroup::from_args(&args)))
}

impl Runner {
    /// Takes over the frames an earlier run of this worker left under its
    /// work dir; returns the attempts now held. Must be called inside a
    /// tokio runtime, before any launch.
    pub fn adopt(&self) -> Vec<AttemptId> {
        let Ok(dirs) = std::fs::read_dir(self.inner.cfg.work_dir.join("shims")) else {
            return Vec::new();
        };
        let mut held = Vec::new();
        for state in dirs.flatten().map(|e| e.path()) {
            match self.adopt_one(&state) {
                Ok(run) => {
                    let a = run.0.attempt;
                    tracing::info!(attempt = %a, "adopted a frame left running by an earlier run of this worker");
                    held.push(a);
                    self.take_over(run);
                }
                Err(why) => {
                    tracing::warn!("killing {}: {why}", state.display());
                    kill_leftover(&state);
                }
            }
        }
        held
    }

    fn adopt_one(&self, state: &Path) -> Result<(Running, Meta), &'static str> {
        let attempt: AttemptId = state
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .map(AttemptId)
            .ok_or("not a frame")?;
        let meta = Meta::read(state).ok_or("no record of its launch")?;
        let (shim, frame, cgroup) = read_pids(state).ok_or("its supervisor never started it")?;
        // The pidfd first, so the pid cannot be another process's by the
        // time it is checked; the exit file last, so a supervisor that wrote
        // it and left in between is seen as ended, not gone.
        let watch = super::proc::pidfd_open(shim);
        let pidfd = if is_shim_of(shim, state) {
            Some(watch.ok_or("cannot watch its supervisor")?)
        } else if state.join("exit").exists() {
            // Ended while no worker ran: reported at once.
            None
        } else {
            return Err("its supervisor is gone");
        };
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&meta.log)
            .map_err(|_| "its log is gone")?;
        let started = UNIX_EPOCH + Duration::from_millis(meta.started_ms);
        let ran = SystemTime::now()
            .duration_since(started)
            .unwrap_or_default();
        let run = Running {
            attempt,
            tree: Tree {
                pid: shim,
                pgid: frame,
                cgroup,
                shim: Some(state.to_owned()),
            },
            pidfd,
            wake: Arc::new(Notify::new()),
            log,
            scratch: meta.scratch.clone(),
            started,
            spawned_at: tokio::time::Instant::now()
                .checked_sub(ran)
                .unwrap_or_else(tokio::time::Instant::now),
            timeout: meta.timeout_ms.map(Duration::from_millis),
            memory_limit_kb: meta.memory_limit_kb,
            outputs: meta.outputs.clone(),
            // Read as whom the supervisor switched to, as at its start.
            reader: self
                .inner
                .cfg
                .switch_user
                .then(|| super::account::recorded(state).map(|(ids, _)| ids))
                .flatten(),
        };
        Ok((run, meta))
    }

    fn take_over(&self, (run, meta): (Running, Meta)) {
        let rt = tokio::runtime::Handle::current();
        let mut st = self.inner.lock();
        for &g in &meta.gpus {
            if let Some(b) = st.gpu_busy.get_mut(g as usize) {
                *b = true;
            }
        }
        st.frames.insert(
            run.attempt,
            Slot {
                log_path: meta.log,
                pgid: run.tree.pgid,
                members: run.tree.cgroup.as_ref().map(|c| c.members_file()),
                usage: Usage::default(),
                series: kiln_core::series::Series::new(super::USAGE_POINTS),
                stop: None,
                finishing: false,
                kill_now: false,
                wake: run.wake.clone(),
                gpus: meta.gpus,
                memory_limit_kb: meta.memory_limit_kb,
            },
        );
        if !st.sampling {
            st.sampling = true;
            rt.spawn(sample_loop(self.inner.clone()));
        }
        rt.spawn(supervise(self.inner.clone(), run));
    }
}

/// Kills what is left of a frame that cannot be adopted.
fn kill_leftover(state: &Path) {
    if let Some((shim, frame, cgroup)) = read_pids(state) {
        if is_shim_of(shim, state) {
            unsafe { libc::kill(shim, libc::SIGKILL) };
            if cgroup.is_none() && frame > 0 {
                unsafe { libc::killpg(frame, libc::SIGKILL) };
            }
        }
        if let Some(cg) = &cgroup {
            cg.kill_until_empty(Duration::from_secs(10));
            cg.remove();
        }
    }
    let _ = std::fs::remove_dir_all(state);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_records_round_trip() {
        let dir = std::env::temp_dir().join(format!("kiln-adopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for m in [
            Meta {
                log: "/w/logs/my log.log".into(),
                started_ms: 1_795_428_000_000,
                timeout_ms: Some(3_600_000),
                memory_limit_kb: Some(1 << 20),
                scratch: Some("/w/frames/7".into()),
                gpus: vec![0, 3],
                outputs: vec![
                    (
                        "out/a b.0007.exr".into(),
                        "/w/frames/7/out/a b.0007.exr".into(),
                    ),
                    ("/abs/é\tx.png".into(), "/abs/é\tx.png".into()),
                ],
            },
            Meta {
                log: "/w/logs/8.log".into(),
                ..Meta::default()
            },
        ] {
            m.write(&dir).unwrap();
            assert_eq!(Meta::read(&dir), Some(m));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
