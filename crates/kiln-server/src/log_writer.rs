//! Log chunks from worker links written on a thread of their own, so that
//! file creation and writes (a fill starts tens of thousands of attempts a
//! second, each making a file) never hold the async threads that serve
//! clients and fan events out.
//!
//! One queue keeps a connection's order: a frame's end is handled after
//! every chunk its link queued before it, and is answered only once its
//! log is synced. A chunk that could not be written fails its attempt's
//! next chunk or end, so the link drops (or the server stops, on a full or
//! broken disk) exactly as when writes were inline; the worker resends
//! after reconnecting, and writes at offsets are idempotent.

use crate::logs::LogStore;
use kiln_core::model::AttemptId;
use std::fs::File;
use std::io;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Jobs queued before a link waits for room (its worker's backpressure).
const QUEUE: usize = 1024;

enum Job {
    Write {
        attempt: AttemptId,
        offset: u64,
        data: Vec<u8>,
    },
    Finish {
        attempt: AttemptId,
        size: u64,
        done: oneshot::Sender<io::Result<Arc<File>>>,
    },
}

/// The queue to the log thread; cloned into each link.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Job>,
    logs: Arc<LogStore>,
}

impl LogWriter {
    /// Starts the thread; it ends when the last writer is dropped.
    pub fn spawn(logs: Arc<LogStore>) -> io::Result<LogWriter> {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let on_thread = logs.clone();
        std::thread::Builder::new()
            .name("kiln-logs".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    run(&on_thread, job);
                }
            })?;
        Ok(LogWriter { tx, logs })
    }

    /// Queues a chunk; an error if an earlier chunk of this attempt failed.
    pub async fn write(&self, attempt: AttemptId, offset: u64, data: Vec<u8>) -> io::Result<()> {
        if let Some(e) = self.logs.take_failure(attempt) {
            return Err(e);
        }
        let job = Job::Write {
            attempt,
            offset,
            data,
        };
        self.tx.send(job).await.map_err(|_| stopped())
    }

    /// Closes an ended attempt's log once every chunk queued before is
    /// written (see [`LogStore::close`]), then syncs it on a blocking
    /// thread: one slow sync holds up neither the queue nor other syncs.
    pub async fn finish(&self, attempt: AttemptId, size: u64) -> io::Result<()> {
        let (done, answer) = oneshot::channel();
        let job = Job::Finish {
            attempt,
            size,
            done,
        };
        self.tx.send(job).await.map_err(|_| stopped())?;
        let file = answer.await.map_err(|_| stopped())??;
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(io::Error::other)?
    }
}

impl LogWriter {
    /// Keeps an ended attempt's thumbnails and its memory and CPU over
    /// time beside its log, on the blocking pool, and drops them from the
    /// end: the farm keeps only whether each thumbnail exists.
    pub async fn save_extras(&self, e: &mut kiln_core::link::FrameEnded) -> io::Result<()> {
        let thumbs: Vec<(usize, Vec<u8>)> = e
            .outputs
            .iter_mut()
            .enumerate()
            .filter_map(|(i, o)| o.thumbnail.take().map(|t| (i, t)))
            .collect();
        let usage = std::mem::take(&mut e.usage);
        if thumbs.is_empty() && usage.is_empty() {
            return Ok(());
        }
        let (logs, attempt) = (self.logs.clone(), e.attempt);
        tokio::task::spawn_blocking(move || {
            for (i, t) in thumbs {
                logs.save_thumbnail(attempt, i, &t)?;
            }
            if !usage.is_empty() {
                logs.save_usage(attempt, &usage)?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn stopped() -> io::Error {
    io::Error::other("the log writer stopped")
}

fn run(logs: &LogStore, job: Job) {
    match job {
        Job::Write {
            attempt,
            offset,
            data,
        } => {
            if let Err(e) = logs.write(attempt, offset, &data) {
                tracing::debug!(?attempt, "writing a log chunk failed: {e}");
                logs.note_failure(attempt, e);
            }
        }
        Job::Finish {
            attempt,
            size,
            done,
        } => {
            let r = match logs.take_failure(attempt) {
                Some(e) => {
                    // The attempt's file stays open for the resend.
                    Err(e)
                }
                None => logs.close(attempt, size),
            };
            let _ = done.send(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_land_in_order_before_the_end_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(LogStore::new(dir.path().to_path_buf()).unwrap());
        let w = LogWriter::spawn(logs.clone()).unwrap();
        let a = AttemptId(7);
        let mut offset = 0;
        for i in 0..2000 {
            let line = format!("line {i}\n").into_bytes();
            let n = line.len() as u64;
            w.write(a, offset, line).await.unwrap();
            offset += n;
        }
        w.finish(a, offset).await.unwrap();
        let text = String::from_utf8(logs.read(a, 0, 1 << 20).unwrap()).unwrap();
        assert_eq!(text.lines().count(), 2000);
        assert!(text.ends_with("line 1999\n"));
    }

    #[tokio::test]
    async fn a_failed_chunk_fails_the_attempts_end_and_a_resend_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        let logs = Arc::new(LogStore::new(root.clone()).unwrap());
        let w = LogWriter::spawn(logs.clone()).unwrap();
        let a = AttemptId(12);
        // The attempt's directory is a file: its log cannot be made.
        let blocked = logs.path(a).parent().unwrap().to_path_buf();
        std::fs::write(&blocked, b"not a directory").unwrap();
        w.write(a, 0, b"lost?\n".to_vec()).await.unwrap();
        assert!(w.finish(a, 6).await.is_err(), "the end is refused");
        // The link reconnects and the worker sends it all again.
        std::fs::remove_file(&blocked).unwrap();
        w.write(a, 0, b"lost?\n".to_vec()).await.unwrap();
        w.finish(a, 6).await.unwrap();
        assert_eq!(logs.read(a, 0, 100).unwrap(), b"lost?\n");
    }
}
