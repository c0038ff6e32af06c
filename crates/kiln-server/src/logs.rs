//! Frame logs on the server's disk, one file per attempt, written from the
//! chunks workers stream and read back by clients at any time; beside each
//! log, the thumbnails of the attempt's outputs (pruned with it).
//!
//! Chunks carry their offset, so a worker that resends after a reconnect
//! rewrites the same bytes: writes are idempotent.

use kiln_core::model::AttemptId;
use kiln_core::series::UsageSample;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct LogStore {
    root: PathBuf,
    /// Files of attempts still being written, kept open between chunks.
    /// The lock only guards the table: IO happens on a clone of the handle.
    open: Mutex<HashMap<AttemptId, Arc<File>>>,
    /// The first failed write of each attempt, until its link is told (at
    /// its next chunk or end) or the attempt is lost.
    failed: Mutex<HashMap<AttemptId, io::Error>>,
    /// When each open log last grew (ms since the epoch), since this server
    /// started: stuck frames are found without asking the disk.
    written: Mutex<HashMap<AttemptId, i64>>,
}

impl LogStore {
    pub fn new(root: PathBuf) -> io::Result<LogStore> {
        std::fs::create_dir_all(&root)?;
        Ok(LogStore {
            root,
            open: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        })
    }

    /// `logs/<attempt / 10000>/<attempt>.log`: bounded directory sizes.
    pub fn path(&self, attempt: AttemptId) -> PathBuf {
        self.root
            .join(format!("{:06}", attempt.0 / 10_000))
            .join(format!("{}.log", attempt.0))
    }

    /// `<attempt>.<output>.jpg` beside the attempt's log.
    pub fn thumbnail_path(&self, attempt: AttemptId, output: usize) -> PathBuf {
        self.path(attempt)
            .with_file_name(format!("{}.{output}.jpg", attempt.0))
    }

    /// Keeps an output's thumbnail, synced: the attempt's end, which says
    /// it exists, is committed after this returns.
    pub fn save_thumbnail(&self, attempt: AttemptId, output: usize, jpeg: &[u8]) -> io::Result<()> {
        write_whole(&self.thumbnail_path(attempt, output), jpeg, true)
    }

    /// `<attempt>.usage.json` beside the attempt's log.
    pub fn usage_path(&self, attempt: AttemptId) -> PathBuf {
        self.path(attempt)
            .with_file_name(format!("{}.usage.json", attempt.0))
    }

    /// Keeps an ended attempt's memory and CPU over time. Not synced: the
    /// frame's end waits for it on its link, an fsync per frame end slowed
    /// a worker's frames by half (bench/targets.sh), and a series lost to a
    /// power cut only leaves its chart empty (nothing says it exists).
    pub fn save_usage(&self, attempt: AttemptId, samples: &[UsageSample]) -> io::Result<()> {
        let json = serde_json::to_vec(samples).map_err(io::Error::other)?;
        write_whole(&self.usage_path(attempt), &json, false)
    }

    /// An ended attempt's memory and CPU over time; empty if its worker
    /// sent none (or it was pruned).
    pub fn usage(&self, attempt: AttemptId) -> io::Result<Vec<UsageSample>> {
        match std::fs::read(self.usage_path(attempt)) {
            Ok(b) => serde_json::from_slice(&b).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// An output's thumbnail, or `Ok(None)` if there is none (or it was
    /// pruned).
    pub fn thumbnail(&self, attempt: AttemptId, output: usize) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.thumbnail_path(attempt, output)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn file(&self, attempt: AttemptId) -> io::Result<Arc<File>> {
        if let Some(f) = self.open.lock().expect("log table poisoned").get(&attempt) {
            return Ok(f.clone());
        }
        let path = self.path(attempt);
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
        };
        // Its directory (one per 10,000 attempts) is made by the first.
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                open()
            }
            r => r,
        };
        let file = Arc::new(file?);
        // Two chunks of one attempt arrive in order on one connection, so a
        // race here only ever opens the same file twice; keep the first.
        let mut open = self.open.lock().expect("log table poisoned");
        Ok(open.entry(attempt).or_insert(file).clone())
    }

    /// Deletes the logs of attempts that ended (their file was last written)
    /// before `before`. Files still open (an attempt running) stay, and so do
    /// the directories (one per 10,000 attempts): one removed while a chunk
    /// makes its file there would fail that write. Returns how many files were deleted.
    pub fn prune(&self, before: std::time::SystemTime) -> io::Result<u64> {
        let mut deleted = 0;
        for dir in std::fs::read_dir(&self.root)? {
            let dir = dir?.path();
            if !dir.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&dir)? {
                let f = f?;
                let path = f.path();
                // `<attempt>.log` and its thumbnails, `<attempt>.<n>.jpg`.
                let attempt = path
                    .file_name()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.split('.').next())
                    .and_then(|s| s.parse::<i64>().ok())
                    .map(AttemptId);
                let open = attempt.is_some_and(|a| {
                    self.open
                        .lock()
                        .expect("log table poisoned")
                        .contains_key(&a)
                });
                // A file renamed or pruned meanwhile is no reason to stop.
                let old = match f.metadata().and_then(|m| m.modified()) {
                    Ok(t) => t < before,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if old && !open && attempt.is_some() {
                    match std::fs::remove_file(&path) {
                        Ok(()) => deleted += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// Writes a chunk at its offset. A chunk that starts past the end is
    /// refused: one before it was lost (its write failed), and writing this
    /// one would leave a hole that the worker's resend, which starts from
    /// the file's size, would never fill.
    pub fn write(&self, attempt: AttemptId, offset: u64, data: &[u8]) -> io::Result<()> {
        let file = self.file(attempt)?;
        let len = file.metadata()?.len();
        if offset > len {
            return Err(io::Error::other(format!(
                "the log of attempt {} has {len} bytes, and a chunk came for offset {offset}: \
                 one before it was lost",
                attempt.0
            )));
        }
        file.write_all_at(data, offset)?;
        self.written
            .lock()
            .expect("log table poisoned")
            .insert(attempt, crate::now_ms());
        Ok(())
    }

    /// The attempts written while they ran, with when: for a caller that
    /// looks many up at once (one lock, not one each).
    pub fn with_writes<R>(&self, f: impl FnOnce(&HashMap<AttemptId, i64>) -> R) -> R {
        f(&self.written.lock().expect("log table poisoned"))
    }

    /// Closes an ended attempt's log, and returns its file for the caller
    /// to sync (off the async threads, and not on the log thread: syncs of
    /// different attempts go on side by side). The worker sent `size`
    /// bytes in all; anything past that is a leftover of an older
    /// connection and is cut off.
    pub fn close(&self, attempt: AttemptId, size: u64) -> io::Result<Arc<File>> {
        let file = self.file(attempt)?;
        if file.metadata()?.len() != size {
            file.set_len(size)?;
        }
        self.open
            .lock()
            .expect("log table poisoned")
            .remove(&attempt);
        self.written
            .lock()
            .expect("log table poisoned")
            .remove(&attempt);
        Ok(file)
    }

    /// Closes an attempt's file without syncing (the attempt was lost),
    /// and drops a write failure nobody will be told of.
    pub fn forget(&self, attempt: AttemptId) {
        self.open
            .lock()
            .expect("log table poisoned")
            .remove(&attempt);
        self.written
            .lock()
            .expect("log table poisoned")
            .remove(&attempt);
        self.take_failure(attempt);
    }

    /// Keeps a failed write for its attempt's link to be told of (the
    /// first one, if several failed).
    pub fn note_failure(&self, attempt: AttemptId, e: io::Error) {
        self.failed
            .lock()
            .expect("log table poisoned")
            .entry(attempt)
            .or_insert(e);
    }

    /// The attempt's failed write not yet told, if any.
    pub fn take_failure(&self, attempt: AttemptId) -> Option<io::Error> {
        self.failed
            .lock()
            .expect("log table poisoned")
            .remove(&attempt)
    }

    /// When the attempt's log file was last written (ms since the epoch),
    /// as the disk says: for attempts written before this server started.
    pub fn modified(&self, attempt: AttemptId) -> Option<i64> {
        let t = std::fs::metadata(self.path(attempt))
            .ok()?
            .modified()
            .ok()?;
        let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        i64::try_from(ms).ok()
    }

    pub fn size(&self, attempt: AttemptId) -> u64 {
        std::fs::metadata(self.path(attempt))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Up to `max` bytes from `offset`; empty at or past the end.
    pub fn read(&self, attempt: AttemptId, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        read_at(&self.path(attempt), offset, max)
    }
}

fn read_at(path: &Path, offset: u64, max: usize) -> io::Result<Vec<u8>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if offset >= len {
        return Ok(Vec::new());
    }
    let n = ((len - offset) as usize).min(max);
    let mut buf = vec![0; n];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Writes a file whole, or not at all (a crash leaves at most a `.tmp`
/// beside it, pruned with the attempt's log); its data synced if `synced`.
/// The directory is not synced, as for logs: the file's name is then as
/// durable as a log's.
fn write_whole(path: &Path, bytes: &[u8], synced: bool) -> io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // A name of its own: an end resent on a new connection may be written
    // at the same time as the first.
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("{n}.tmp"));
    let mut f = File::create(&tmp)?;
    io::Write::write_all(&mut f, bytes)?;
    if synced {
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_and_usage_are_kept_beside_the_log_and_pruned_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf()).unwrap();
        let (old, new) = (AttemptId(10_001), AttemptId(10_002));
        for a in [old, new] {
            logs.write(a, 0, b"x").unwrap();
            logs.close(a, 1).unwrap();
            logs.save_thumbnail(a, 0, b"jpeg0").unwrap();
            logs.save_thumbnail(a, 3, b"jpeg3").unwrap();
            let s = UsageSample {
                t: 1,
                rss_kb: 2,
                cpu_ms: 3,
            };
            logs.save_usage(a, &[s, s]).unwrap();
        }
        assert_eq!(
            logs.thumbnail(old, 3).unwrap().as_deref(),
            Some(&b"jpeg3"[..])
        );
        assert_eq!(logs.thumbnail(old, 1).unwrap(), None);
        assert_eq!(logs.usage(old).unwrap().len(), 2);
        assert!(logs.usage(AttemptId(7)).unwrap().is_empty());
        // Everything of the attempts that ended before the cut goes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let cut = std::time::SystemTime::now();
        assert_eq!(
            logs.prune(cut).unwrap(),
            8,
            "two logs, four previews, two series"
        );
        assert_eq!(logs.thumbnail(new, 0).unwrap(), None);
        assert!(logs.usage(old).unwrap().is_empty());
        let left: Vec<_> = std::fs::read_dir(logs.path(old).parent().unwrap())
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn writes_are_idempotent_and_close_trims() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf()).unwrap();
        let a = AttemptId(12345);
        logs.write(a, 0, b"hello ").unwrap();
        logs.write(a, 6, b"world").unwrap();
        logs.write(a, 0, b"hello ").unwrap();
        assert_eq!(logs.read(a, 0, 100).unwrap(), b"hello world");
        assert_eq!(logs.read(a, 6, 3).unwrap(), b"wor");
        logs.close(a, 5).unwrap().sync_data().unwrap();
        assert_eq!(logs.read(a, 0, 100).unwrap(), b"hello");
        assert_eq!(logs.size(a), 5);
        assert!(logs.read(AttemptId(9), 0, 10).unwrap().is_empty());
    }

    #[test]
    fn a_chunk_past_the_end_is_refused_so_no_hole_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf()).unwrap();
        let a = AttemptId(3);
        logs.write(a, 0, b"one\n").unwrap();
        // "two\n" at 4 was lost; "three\n" at 8 must not land after a gap.
        assert!(logs.write(a, 8, b"three\n").is_err());
        assert_eq!(logs.size(a), 4);
        // The resend starts from the size the server has.
        logs.write(a, 4, b"two\n").unwrap();
        logs.write(a, 8, b"three\n").unwrap();
        assert_eq!(logs.read(a, 0, 100).unwrap(), b"one\ntwo\nthree\n");
    }

    #[test]
    fn when_a_running_log_last_grew_is_kept_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf()).unwrap();
        let (a, b) = (AttemptId(5), AttemptId(6));
        let before = crate::now_ms();
        logs.write(a, 0, b"x").unwrap();
        logs.write(b, 0, b"y").unwrap();
        let t = logs.with_writes(|w| w.get(&a).copied()).unwrap();
        assert!(t >= before && t <= crate::now_ms());
        // A refused chunk is no output.
        assert!(logs.write(a, 100, b"z").is_err());
        assert_eq!(logs.with_writes(|w| w.get(&a).copied()), Some(t));
        logs.close(a, 1).unwrap();
        logs.forget(b);
        assert!(
            logs.with_writes(|w| w.is_empty()),
            "ended and lost attempts leave"
        );
    }

    #[test]
    fn a_lost_attempt_leaves_neither_its_file_nor_its_failure_behind() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf()).unwrap();
        let a = AttemptId(4);
        logs.write(a, 0, b"x").unwrap();
        logs.note_failure(a, io::Error::other("disk full"));
        logs.forget(a);
        assert!(logs.open.lock().unwrap().is_empty());
        assert!(logs.take_failure(a).is_none());
        // Told once: the first failure, then nothing.
        logs.note_failure(a, io::Error::other("first"));
        logs.note_failure(a, io::Error::other("second"));
        assert_eq!(logs.take_failure(a).unwrap().to_string(), "first");
        assert!(logs.take_failure(a).is_none());
    }
}
