//! The farm over time: the committed gauges sampled every so often and
//! kept for a day, for the wrangler's charts in the web UI
//! (`GET /api/v1/farm/history`): read from memory, written to the store as
//! they are taken, so the charts survive a restart. Prometheus
//! (`/metrics`) is where a long record belongs.

use crate::committed::Committed;
use kiln_core::model::Millis;
use kiln_core::view::FarmSample;
use kiln_store::Store;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the gauges are sampled unless the server is told otherwise.
pub const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_secs(15);
/// How far back the samples go.
const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);

pub struct FarmHistory {
    samples: Mutex<VecDeque<FarmSample>>,
    keep: usize,
}

impl FarmHistory {
    /// A history sampled every `every`, keeping a day of samples.
    pub fn new(every: Duration) -> FarmHistory {
        let every = every.max(Duration::from_millis(100));
        let keep = (KEEP_FOR.as_millis() / every.as_millis()).max(1) as usize;
        FarmHistory {
            samples: Mutex::new(VecDeque::new()),
            keep,
        }
    }

    pub fn push(&self, s: FarmSample) {
        let mut q = self.samples.lock().expect("not poisoned");
        if q.len() == self.keep {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// The samples taken at or after `since` (all, without it), oldest first.
    pub fn since(&self, since: Option<Millis>) -> Vec<FarmSample> {
        let q = self.samples.lock().expect("not poisoned");
        let from = since.map_or(0, |t| q.partition_point(|s| s.at < t));
        q.range(from..).cloned().collect()
    }
}

impl FarmHistory {
    /// Takes back the samples of the last day from the store (a server
    /// that restarts keeps its charts).
    pub async fn restore<S: Store>(&self, store: &S) -> Result<(), kiln_store::Error> {
        let since = crate::now_ms() - KEEP_FOR.as_millis() as Millis;
        for s in store.farm_samples(since).await? {
            self.push(s);
        }
        Ok(())
    }
}

/// Samples `committed` into `history` and the store now and every `every`
/// after, until the runtime stops; samples past a day are pruned from the
/// store now and then.
pub(crate) fn spawn_sampler<S: Store>(
    history: Arc<FarmHistory>,
    committed: Committed,
    every: Duration,
    store: Arc<S>,
) {
    tokio::spawn(async move {
        let every = every.max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut taken: u64 = 0;
        loop {
            tick.tick().await;
            let now = crate::now_ms();
            let s = FarmSample::of(now, &committed.metrics());
            history.push(s.clone());
            // Lost only on a failing disk, which the applier's commits
            // report: the charts miss a point, nothing else does.
            if let Err(e) = store.save_farm_sample(&s).await {
                tracing::warn!("cannot keep a sample of the farm: {e}");
            }
            // About once an hour (and at the start).
            if taken.is_multiple_of((3_600_000 / every.as_millis().max(1) as u64).max(1)) {
                let before = now - KEEP_FOR.as_millis() as Millis;
                if let Err(e) = store.prune_farm_samples(before).await {
                    tracing::warn!("cannot prune the farm's old samples: {e}");
                }
            }
            taken += 1;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: Millis) -> FarmSample {
        FarmSample::of(t, &Default::default())
    }

    #[test]
    fn a_day_is_kept_and_read_from_a_time_on() {
        let h = FarmHistory::new(Duration::from_secs(3600));
        assert_eq!(h.keep, 24);
        for t in 0..30 {
            h.push(at(t * 10));
        }
        let all = h.since(None);
        assert_eq!(all.len(), 24, "the oldest went");
        assert_eq!(all[0].at, 60);
        let recent: Vec<Millis> = h.since(Some(255)).iter().map(|s| s.at).collect();
        assert_eq!(recent, [260, 270, 280, 290]);
        assert!(h.since(Some(1000)).is_empty());
    }
}
