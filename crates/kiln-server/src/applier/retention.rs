//! Retention on the applier's tick: finished jobs are archived in the
//! step (a farm change, committed like any other); deleting old history
//! and logs is IO, done by a task of its own so no step waits for it.

use crate::logs::LogStore;
use crate::Retention;
use kiln_core::farm::Farm;
use kiln_store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Jobs one purge call deletes; the task calls again until none is left.
const PURGE_JOBS: u32 = 100;

pub(super) struct Keeper {
    r: Retention,
    /// When the jobs were last looked at, and the store and logs.
    archived_at: Option<i64>,
    cleaned_at: Option<i64>,
    /// A cleaning task is running: the next waits for it.
    cleaning: Arc<AtomicBool>,
}

impl Keeper {
    pub(super) fn new(r: Retention) -> Keeper {
        Keeper {
            r,
            archived_at: None,
            cleaned_at: None,
            cleaning: Arc::default(),
        }
    }

    fn due(last: &mut Option<i64>, every: i64, now: i64) -> bool {
        if last.is_some_and(|t| now - t < every) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Archives the jobs that finished long enough ago, if it is time.
    pub(super) fn archive(&mut self, farm: &mut Farm, now: i64) {
        let Some(after) = self.r.archive_after_ms else {
            return;
        };
        if !Self::due(&mut self.archived_at, self.r.every_ms, now) {
            return;
        }
        let gone = farm.archive(now - after);
        if !gone.is_empty() {
            tracing::info!(
                jobs = gone.len(),
                "archived jobs that finished over {} ago; `kiln history` still reads them",
                human(after)
            );
        }
    }

    /// Starts deleting old history and logs, if it is time and the last
    /// round has ended. Failures are logged and retried next time: nothing
    /// else depends on them.
    pub(super) fn clean<S: Store>(&mut self, store: &Arc<S>, logs: &Arc<LogStore>) {
        let (history, logs_ms) = (self.r.history_ms, self.r.logs_ms);
        if history.is_none() && logs_ms.is_none() {
            return;
        }
        let now = crate::now_ms();
        if self.cleaning.load(Ordering::Acquire)
            || !Self::due(&mut self.cleaned_at, self.r.every_ms, now)
        {
            return;
        }
        self.cleaning.store(true, Ordering::Release);
        let (store, logs, cleaning) = (store.clone(), logs.clone(), self.cleaning.clone());
        tokio::spawn(async move {
            if let Some(keep) = history {
                let mut purged = 0;
                loop {
                    match store.purge(now - keep, PURGE_JOBS).await {
                        Ok(0) => break,
                        Ok(n) => purged += n,
                        Err(e) => {
                            tracing::warn!("deleting old history failed (retried later): {e}");
                            break;
                        }
                    }
                }
                if purged > 0 {
                    tracing::info!(
                        jobs = purged,
                        "deleted jobs archived over {} ago",
                        human(keep)
                    );
                }
            }
            if let Some(keep) = logs_ms {
                let before = SystemTime::now() - Duration::from_millis(keep as u64);
                match tokio::task::spawn_blocking(move || logs.prune(before)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => {
                        tracing::info!(files = n, "deleted frame logs over {} old", human(keep))
                    }
                    Ok(Err(e)) => tracing::warn!("deleting old logs failed (retried later): {e}"),
                    Err(e) => tracing::warn!("deleting old logs failed (retried later): {e}"),
                }
            }
            cleaning.store(false, Ordering::Release);
        });
    }
}

/// `7d`, `36h`, `90s`: as the flags take them.
fn human(ms: i64) -> String {
    let s = ms / 1000;
    if s % 86_400 == 0 && s > 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 && s > 0 {
        format!("{}h", s / 3600)
    } else {
        format!("{s}s")
    }
}
