//! Describes this machine to the server: what it is, what it offers, and the
//! load and free memory that heartbeats carry.

use kiln_core::model::HostReport;
use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs;

/// A broken GPU driver can make `nvidia-smi` hang; registration must not.
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);

/// The host as found now. Never fails: a figure that cannot be read is 0
/// (or empty), and the reason is logged.
pub fn detect(work_dir: &Path) -> HostReport {
    let mem = procfs::meminfo().unwrap_or_else(|e| {
        tracing::warn!("cannot read /proc/meminfo: {e}");
        procfs::MemInfo::default()
    });
    let (gpus, gpu_memory_kb) = nvidia_gpus();
    HostReport {
        name: hostname(),
        os: os_name(),
        cores: online_cpus().saturating_mul(100),
        memory_kb: mem.total_kb,
        total_memory_kb: mem.total_kb,
        swap_kb: mem.swap_total_kb,
        gpus,
        gpu_memory_kb,
        scratch_free_kb: free_space_kb(work_dir),
        load: load_average(),
        tags: Vec::new(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The one-minute load average, 0 if unreadable.
pub fn load_average() -> f64 {
    procfs::loadavg().unwrap_or(0.0)
}

/// Memory that new work can use without swapping (`MemAvailable`), 0 if
/// unreadable.
pub fn free_memory_kb() -> u64 {
    procfs::meminfo().map(|m| m.available_kb).unwrap_or(0)
}

/// The host's name as the kernel knows it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    // Truncated names may lack the NUL; take what is there.
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn online_cpus() -> u32 {
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as u32
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    }
}

/// E.g. "Debian GNU/Linux 12 (bookworm), Linux 6.1.0-18-amd64".
fn os_name() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok()
        .and_then(|text| os_release_pretty_name(&text));
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    let kernel = if unsafe { libc::uname(&mut uts) } == 0 {
        let field = |f: &[libc::c_char]| {
            unsafe { CStr::from_ptr(f.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        Some(format!("{} {}", field(&uts.sysname), field(&uts.release)))
    } else {
        None
    };
    match (pretty, kernel) {
        (Some(p), Some(k)) => format!("{p}, {k}"),
        (Some(p), None) => p,
        (None, Some(k)) => k,
        (None, None) => "Linux".to_owned(),
    }
}

fn os_release_pretty_name(text: &str) -> Option<String> {
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("PRETTY_NAME="))?
        .trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    (!value.is_empty()).then(|| value.to_owned())
}

/// Free space for unprivileged users on the file system that holds `dir`,
/// or that would hold it once made (its nearest existing ancestor).
pub fn free_space_kb(dir: &Path) -> u64 {
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.exists() {
            let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
                return 0;
            };
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
                return 0;
            }
            return (st.f_bavail as u64).saturating_mul(st.f_frsize as u64) / 1024;
        }
        at = p.parent();
    }
    0
}

/// (count, total memory in KiB) of NVIDIA GPUs; (0, 0) without `nvidia-smi`.
fn nvidia_gpus() -> (u32, u64) {
    let child = Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (0, 0),
        Err(e) => {
            tracing::warn!("cannot run nvidia-smi: {e}");
            return (0, 0);
        }
    };
    // The output is a line per GPU, far below a pipe's capacity, so waiting
    // before reading cannot deadlock.
    let deadline = Instant::now() + NVIDIA_SMI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                tracing::warn!(
                    "nvidia-smi did not answer in {NVIDIA_SMI_TIMEOUT:?}; reporting no GPUs"
                );
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => {
                tracing::warn!("waiting for nvidia-smi: {e}");
                break None;
            }
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    match status {
        Some(s) if s.success() => parse_nvidia_smi(&out),
        Some(s) => {
            tracing::warn!("nvidia-smi failed ({s}); reporting no GPUs");
            (0, 0)
        }
        None => (0, 0),
    }
}

fn parse_nvidia_smi(out: &str) -> (u32, u64) {
    let mut count = 0;
    let mut kb = 0u64;
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        count += 1;
        // "[N/A]" on some boards: count the GPU, not its memory.
        if let Ok(mib) = line.parse::<u64>() {
            kb += mib * 1024;
        }
    }
    (count, kb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_sane_values() {
        let r = detect(Path::new("/nonexistent/kiln/work"));
        assert!(!r.name.is_empty());
        assert!(r.os.contains("Linux"), "{}", r.os);
        assert!(r.cores >= 100, "{}", r.cores);
        assert!(r.memory_kb > 0 && r.memory_kb == r.total_memory_kb);
        assert!(r.scratch_free_kb > 0, "falls back to / for a missing dir");
        assert!(r.load >= 0.0);
        assert_eq!(r.version, env!("CARGO_PKG_VERSION"));
        assert!(r.tags.is_empty());
        if r.gpus == 0 {
            assert_eq!(r.gpu_memory_kb, 0);
        }
        assert!(free_memory_kb() > 0 && free_memory_kb() <= r.total_memory_kb);
    }

    #[test]
    fn parses_os_release_and_nvidia_smi() {
        assert_eq!(
            os_release_pretty_name("NAME=x\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n")
                .as_deref(),
            Some("Rocky Linux 9.3 (Blue Onyx)")
        );
        assert_eq!(os_release_pretty_name("NAME=x\n"), None);
        assert_eq!(parse_nvidia_smi("24576\n24576\n"), (2, 2 * 24576 * 1024));
        assert_eq!(parse_nvidia_smi(""), (0, 0));
        assert_eq!(parse_nvidia_smi("[N/A]\n"), (1, 0));
    }
}
