//! The farm over time: the committed gauges sampled every so often and
//! kept for a day, in memory, for the wrangler's charts in the web UI
//! (`GET /api/v1/farm/history`). A restart starts the charts afresh;
//! Prometheus (`/metrics`) is where a long record belongs.

use crate::committed::Committed;
use kiln_core::model::Millis;
use kiln_core::view::FarmSample;
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

/// Samples `committed` into `history` now and every `every` after, until
/// the runtime stops.
pub(crate) fn spawn_sampler(history: Arc<FarmHistory>, committed: Committed, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            history.push(FarmSample::of(crate::now_ms(), &committed.metrics()));
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
