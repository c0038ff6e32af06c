//! Log shipping: each frame's local log streams to the server in chunks,
//! with backpressure, so the worker's memory does not grow with a frame's
//! output; and the per-frame log cap.
//!
//! Backpressure: the log bytes handed to a connection and not yet taken by
//! the transport are counted ([`Budget`]); no more is read from disk while
//! they exceed [`IN_FLIGHT`]. The transport takes a message only when
//! HTTP/2 flow control lets it send, so a slow server slows the reading,
//! and each take wakes the daemon to read the next chunk.
//!
//! The cap: the server's copy of a log is its first `cap` bytes, then a note
//! saying it was cut, then the runner's footer (exit status, runtime), so
//! the log still says how the frame ended. The frame goes on; what it
//! writes past the cap is dropped. Frames append to their local log
//! (`O_APPEND`), so the worker cuts the local file back to `cap` whenever it
//! looks (every chunk shipped, and at least every tick): the first `cap`
//! bytes never change, and the file grows past the cap by at most what a
//! frame writes between two looks.
//!
//! Offsets in the session (`log_sent`) are offsets in the server's copy:
//! below the cap they are the local file's, from the cap on they index the
//! note and footer kept here ([`Shipper::capped`]).
//!
//! A log that cannot be read (deleted, replaced, EIO) must not hold its
//! frame's end back forever: once the frame has ended and the log has
//! stayed unreadable for [`UNREADABLE_WAIT`], the server's copy is what was
//! shipped, then a note that the rest could not be read, and the end goes.

use crate::session::Session;
use kiln_core::link::WorkerMsg;
use kiln_core::model::AttemptId;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// Largest log chunk sent in one message.
const LOG_CHUNK: usize = 64 * 1024;
/// Log bytes queued for the transport at most, beyond which nothing more is
/// read until it takes some (it holds a chunk or so more itself).
const IN_FLIGHT: usize = 4 * LOG_CHUNK;
/// The runner's footer starts with this line; it is looked for in the last
/// bytes of an ended frame's log, to keep the footer after the cap's note.
const FOOTER_MARK: &[u8] = b"=== kiln frame ended\n";
/// How far from the end of an ended log the footer is looked for.
const FOOTER_SEARCH: u64 = 64 * 1024;
/// How long an ended frame's log may stay unreadable before its end is
/// reported without the rest: long enough for a passing IO error.
const UNREADABLE_WAIT: Duration = Duration::from_secs(5);
/// The size of an ended log that could not be read yet: its end waits.
const SIZE_UNKNOWN: u64 = u64::MAX;

/// Log bytes queued on one connection and not yet taken by its transport.
#[derive(Default)]
pub(crate) struct Budget {
    queued: AtomicUsize,
    drained: Notify,
}

impl Budget {
    fn full(&self) -> bool {
        self.queued.load(Ordering::Relaxed) >= IN_FLIGHT
    }

    /// Resolves when the transport has taken log bytes since the last call.
    pub(crate) async fn drained(&self) {
        self.drained.notified().await
    }
}

/// The connection's outgoing messages as the transport takes them; taking
/// a log chunk gives its bytes back to the budget.
pub(crate) fn outgoing(
    rx: mpsc::UnboundedReceiver<WorkerMsg>,
    budget: Arc<Budget>,
) -> impl futures::Stream<Item = WorkerMsg> + Send + 'static {
    use futures::StreamExt;
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(move |m| {
        if let WorkerMsg::Log { data, .. } = &m {
            budget.queued.fetch_sub(data.len(), Ordering::Relaxed);
            budget.drained.notify_one();
        }
        m
    })
}

pub(crate) struct Shipper {
    logs_dir: PathBuf,
    cap: u64,
    /// Attempts whose log went past the cap: what follows the first `cap`
    /// bytes on the server (the note, then the footer once the frame ended).
    capped: HashMap<AttemptId, Vec<u8>>,
    /// Ended attempts whose local log is final: their length as shipped.
    ended: HashMap<AttemptId, u64>,
    /// Attempts whose log failed to read: since when, and why.
    unreadable: HashMap<AttemptId, (Instant, String)>,
    /// Logs given up on: the server's copy is the local file up to `.0`,
    /// then the note `.1`.
    lost: HashMap<AttemptId, (u64, Vec<u8>)>,
    budget: Arc<Budget>,
    /// Ends sent on the current connection.
    ends_sent: HashSet<AttemptId>,
}

impl Shipper {
    /// `cap`: the most bytes of a frame's own log the server keeps.
    pub(crate) fn new(logs_dir: PathBuf, cap: u64) -> Shipper {
        Shipper {
            logs_dir,
            cap: cap.max(1),
            capped: HashMap::new(),
            ended: HashMap::new(),
            unreadable: HashMap::new(),
            lost: HashMap::new(),
            budget: Arc::default(),
            ends_sent: HashSet::new(),
        }
    }

    pub(crate) fn local_log(&self, attempt: AttemptId) -> PathBuf {
        self.logs_dir.join(format!("{attempt}.log"))
    }

    /// A new connection: a fresh budget, and every end is to be sent again.
    pub(crate) fn connect(&mut self) -> Arc<Budget> {
        self.budget = Arc::default();
        self.ends_sent.clear();
        self.budget.clone()
    }

    /// The frame ended and its local log is complete (footer included):
    /// returns the size of the log as the server will hold it, or
    /// [`SIZE_UNKNOWN`] while the log cannot be read (`pump` tries again,
    /// and in the end gives up). `sent`: what the server has of it.
    pub(crate) fn finish(&mut self, attempt: AttemptId, sent: u64) -> u64 {
        let path = self.local_log(attempt);
        match self.finish_file(attempt, &path) {
            Ok(size) => {
                self.unreadable.remove(&attempt);
                self.ended.insert(attempt, size);
                size
            }
            // No log was ever made (a launch refused, a log that could not
            // be created): nothing to keep, nothing to wait for.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && sent == 0 => {
                self.ended.insert(attempt, 0);
                0
            }
            Err(e) => {
                self.unreadable_now(attempt, &e);
                SIZE_UNKNOWN
            }
        }
    }

    fn unreadable_now(&mut self, attempt: AttemptId, e: &std::io::Error) {
        self.unreadable.entry(attempt).or_insert_with(|| {
            tracing::warn!(
                %attempt,
                "cannot read the frame's log {}: {e}",
                self.logs_dir.join(format!("{attempt}.log")).display()
            );
            (Instant::now(), e.to_string())
        });
    }

    fn finish_file(&mut self, attempt: AttemptId, path: &Path) -> std::io::Result<u64> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let from = len.saturating_sub(FOOTER_SEARCH);
        let mut tail = vec![0; (len - from) as usize];
        file.read_exact_at(&mut tail, from)?;
        let footer = rfind(&tail, FOOTER_MARK).map(|i| from + i as u64);
        if !self.capped.contains_key(&attempt) {
            // The footer always fits: the cap is on what the frame wrote.
            if footer.map_or(len, |f| f) <= self.cap {
                return Ok(len);
            }
            self.cut(attempt, &file);
        }
        if let Some(f) = footer.filter(|&f| f >= self.cap) {
            let kept = self.capped.get_mut(&attempt).expect("capped above");
            kept.extend_from_slice(&tail[(f - from) as usize..]);
        }
        // Only a capped log is written to: a log the worker can read but
        // not write still ships whole up to its cap.
        if let Err(e) = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(self.cap))
        {
            tracing::warn!(%attempt, "cannot cut the log back to the cap: {e}");
        }
        Ok(self.cap + self.capped[&attempt].len() as u64)
    }

    /// Starts dropping the attempt's output past the cap: notes where.
    fn cut(&mut self, attempt: AttemptId, file: &File) {
        let mut last = [0u8];
        let newline = file.read_exact_at(&mut last, self.cap - 1).is_ok() && last[0] == b'\n';
        let note = format!(
            "{}[kiln] log truncated at {} by the worker's --log-cap; the frame goes on\n",
            if newline { "" } else { "\n" },
            human_bytes(self.cap)
        );
        tracing::warn!(%attempt, "log past the cap ({}): the rest is dropped", human_bytes(self.cap));
        self.capped.insert(attempt, note.into_bytes());
    }

    /// The log's length as shipped so far could go, cutting a running
    /// frame's local file back to the cap when it went past it.
    fn len(&mut self, attempt: AttemptId, path: &Path) -> u64 {
        if let Some(&size) = self.ended.get(&attempt) {
            return size;
        }
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len > self.cap {
            if let Ok(file) = OpenOptions::new().read(true).write(true).open(path) {
                if !self.capped.contains_key(&attempt) {
                    self.cut(attempt, &file);
                }
                let _ = file.set_len(self.cap);
            }
        }
        match self.capped.get(&attempt) {
            Some(kept) => self.cap + kept.len() as u64,
            None => len,
        }
    }

    /// Sends what the server lacks of the held attempts' logs, as far as the
    /// budget allows, one chunk per attempt in turn; then the ends whose
    /// logs are all sent (an end is never reported before its log).
    pub(crate) fn pump(&mut self, session: &mut Session, out: &mpsc::UnboundedSender<WorkerMsg>) {
        if !session.is_registered() {
            return;
        }
        self.settle_unreadable(session);
        let held = session.held();
        let mut lens = Vec::with_capacity(held.len());
        for a in held {
            let path = self.local_log(a);
            lens.push((a, self.len(a, &path)));
        }
        while !self.budget.full() {
            let mut progress = false;
            for (attempt, len) in &mut lens {
                if self.budget.full() {
                    break;
                }
                let offset = session.log_sent(*attempt);
                if offset >= *len {
                    continue;
                }
                match self.read(*attempt, offset, *len) {
                    Ok(data) if !data.is_empty() => {
                        self.unreadable.remove(attempt);
                        let n = data.len();
                        self.budget.queued.fetch_add(n, Ordering::Relaxed);
                        let _ = out.send(WorkerMsg::Log {
                            attempt: *attempt,
                            offset,
                            data,
                        });
                        session.set_log_sent(*attempt, offset + n as u64);
                        progress = true;
                    }
                    Ok(_) => *len = offset,
                    // Nothing more of it this time; an ended frame's end
                    // waits for it a while (`settle_unreadable`).
                    Err(e) => {
                        self.unreadable_now(*attempt, &e);
                        *len = offset;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        for e in session.unacked() {
            if !self.ends_sent.contains(&e.attempt) && session.log_sent(e.attempt) >= e.log_size {
                self.ends_sent.insert(e.attempt);
                let _ = out.send(WorkerMsg::Ended(e));
            }
        }
    }

    /// Ended frames whose logs could not be read: their size is learnt
    /// when the log reads again; once it has been unreadable for
    /// [`UNREADABLE_WAIT`], the server's copy ends with what it has and a
    /// note, and the end can go.
    fn settle_unreadable(&mut self, session: &mut Session) {
        for e in session.unacked() {
            let a = e.attempt;
            if e.log_size == SIZE_UNKNOWN {
                match self.finish_file(a, &self.local_log(a)) {
                    Ok(size) => {
                        self.unreadable.remove(&a);
                        self.ended.insert(a, size);
                        session.set_log_size(a, size);
                        continue;
                    }
                    Err(err) => self.unreadable_now(a, &err),
                }
            }
            let Some((since, why)) = self.unreadable.get(&a) else {
                continue;
            };
            if since.elapsed() < UNREADABLE_WAIT {
                continue;
            }
            let sent = session.log_sent(a);
            tracing::warn!(
                attempt = %a,
                "the frame's log stayed unreadable ({why}): reporting its end without the \
                 rest, after the {sent} bytes the server has"
            );
            let note = format!(
                "\n[kiln] the rest of this log could not be read on the worker ({why}); \
                 the frame's end is reported without it\n"
            )
            .into_bytes();
            let size = sent + note.len() as u64;
            self.lost.insert(a, (sent, note));
            self.unreadable.remove(&a);
            self.ended.insert(a, size);
            session.set_log_size(a, size);
        }
    }

    /// Up to a chunk of the server's copy of the log from `offset`.
    fn read(&self, attempt: AttemptId, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        if let Some((at, note)) = self.lost.get(&attempt).filter(|l| offset >= l.0) {
            let from = ((offset - at) as usize).min(note.len());
            let to = note.len().min(from + LOG_CHUNK);
            return Ok(note[from..to].to_vec());
        }
        if let Some(kept) = self.capped.get(&attempt).filter(|_| offset >= self.cap) {
            let from = ((offset - self.cap) as usize).min(kept.len());
            let to = kept.len().min(from + LOG_CHUNK);
            return Ok(kept[from..to].to_vec());
        }
        let end = match self.lost.get(&attempt) {
            Some((at, _)) => *at,
            None if self.capped.contains_key(&attempt) => self.cap,
            None => len,
        };
        let n = (end.saturating_sub(offset) as usize).min(LOG_CHUNK);
        let mut buf = vec![0; n];
        File::open(self.local_log(attempt))?.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// The server has the attempt's end: its local log goes.
    pub(crate) fn forget(&mut self, attempt: AttemptId) {
        let _ = std::fs::remove_file(self.local_log(attempt));
        self.capped.remove(&attempt);
        self.ended.remove(&attempt);
        self.unreadable.remove(&attempt);
        self.lost.remove(&attempt);
        self.ends_sent.remove(&attempt);
    }
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// `1.0 GiB`, `10 MiB`, `512 KiB`, `100 bytes`.
fn human_bytes(n: u64) -> String {
    const K: u64 = 1024;
    match n {
        n if n >= K * K * K => format!("{:.1} GiB", n as f64 / (K * K * K) as f64),
        n if n >= K * K && n % (K * K) == 0 => format!("{} MiB", n / (K * K)),
        n if n >= K * K => format!("{:.1} MiB", n as f64 / (K * K) as f64),
        n if n >= K && n % K == 0 => format!("{} KiB", n / K),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(human_bytes(10 << 20), "10 MiB");
        assert_eq!(human_bytes(3 << 19), "1.5 MiB");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    /// The server's copy of an ended log, as the shipper would send it.
    fn shipped(s: &mut Shipper, a: AttemptId) -> Vec<u8> {
        let size = s.finish(a, 0);
        let mut out = Vec::new();
        while (out.len() as u64) < size {
            let chunk = s.read(a, out.len() as u64, size).unwrap();
            assert!(!chunk.is_empty());
            out.extend(chunk);
        }
        out
    }

    #[test]
    fn the_cap_cuts_the_output_and_keeps_the_footer() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Shipper::new(dir.path().to_path_buf(), 10);
        let footer = "=== kiln frame ended\nexit status: 0\n===\n";
        let (a, b, c) = (AttemptId(1), AttemptId(2), AttemptId(3));
        std::fs::write(s.local_log(a), format!("0123\n{footer}")).unwrap();
        std::fs::write(s.local_log(b), format!("0123456789abc{footer}")).unwrap();
        // Output within the cap, footer past it: the footer always fits.
        std::fs::write(s.local_log(c), format!("012345678\n{footer}")).unwrap();

        assert_eq!(shipped(&mut s, a), format!("0123\n{footer}").as_bytes());
        let note =
            "\n[kiln] log truncated at 10 bytes by the worker's --log-cap; the frame goes on\n";
        assert_eq!(
            String::from_utf8(shipped(&mut s, b)).unwrap(),
            format!("0123456789{note}{footer}")
        );
        assert_eq!(std::fs::metadata(s.local_log(b)).unwrap().len(), 10);
        assert_eq!(
            shipped(&mut s, c),
            format!("012345678\n{footer}").as_bytes()
        );
    }

    #[test]
    fn the_footer_is_the_last_mark() {
        assert_eq!(rfind(b"ab=== kiln frame ended\nx", FOOTER_MARK), Some(2));
        assert_eq!(rfind(b"nothing", FOOTER_MARK), None);
    }
}
