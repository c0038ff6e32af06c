//! What the server records for monitoring, as it happens: latency and
//! duration histograms and counters, shared by the applier and every wire
//! (`FarmApi::recorder`), read at scrape time. Recording is a few relaxed
//! atomic adds, so the applier's hot path can afford it; a step's many
//! pickups are summed locally first ([`Local`]) and added once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds, in seconds, of the buckets of the latency histograms.
pub const FAST: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Upper bounds, in seconds, for how long a frame waited to start.
pub const PICKUP: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];
/// Upper bounds, in seconds, for how long an attempt ran.
pub const RUNTIME: &[f64] = &[
    1.0, 5.0, 15.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

/// A histogram of durations: a count per bucket (not cumulative: each
/// observation adds to one), their sum in microseconds, and the bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One more than `bounds`: the last is +Inf.
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

/// A histogram's figures at one moment, its buckets cumulative as
/// Prometheus wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations at most that); the last bound
    /// is +Inf and its count is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    /// In seconds.
    pub sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    fn bucket(&self, seconds: f64) -> usize {
        self.bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds.len())
    }

    pub fn observe(&self, d: Duration) {
        self.buckets[self.bucket(d.as_secs_f64())].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// Adds what `local` gathered (made with the same bounds).
    pub fn add(&self, local: &Local) {
        for (b, &n) in self.buckets.iter().zip(&local.buckets) {
            if n > 0 {
                b.fetch_add(n, Relaxed);
            }
        }
        self.sum_us.fetch_add(local.sum_us, Relaxed);
    }

    /// A local histogram with the same bounds, to gather many observations.
    pub fn local(&self) -> Local {
        Local {
            bounds: self.bounds,
            buckets: vec![0; self.bounds.len() + 1],
            sum_us: 0,
        }
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Relaxed);
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), total));
        }
        HistogramSnapshot {
            buckets,
            count: total,
            sum: self.sum_us.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// Observations gathered without atomics, added to a [`Histogram`] at once.
#[derive(Debug, Clone)]
pub struct Local {
    bounds: &'static [f64],
    buckets: Vec<u64>,
    sum_us: u64,
}

impl Local {
    pub fn observe_ms(&mut self, ms: i64) {
        let ms = ms.max(0) as u64;
        let seconds = ms as f64 / 1e3;
        let i = self
            .bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds.len());
        self.buckets[i] += 1;
        self.sum_us += ms * 1000;
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|&n| n == 0)
    }
}

/// Everything the server records, one per server, shared by its parts.
#[derive(Debug)]
pub struct Recorder {
    /// Ready → started, per frame, observed when it starts.
    pub pickup: Histogram,
    /// Each attempt's run, observed when it ends.
    pub runtime: Histogram,
    /// One scheduling pass: plan and apply.
    pub pass: Histogram,
    /// One store transaction.
    pub commit: Histogram,
    /// An event's publication (just after its commit) to its follower
    /// handing it to the client's connection, per subscriber.
    pub delivery: Histogram,
    /// Attempts ended since the server started, by outcome (the names
    /// `Outcome` serializes to).
    ended: Mutex<BTreeMap<String, u64>>,
    /// (wire, method, route) → latency of API requests.
    api: Mutex<BTreeMap<ApiKey, Arc<Histogram>>>,
    /// Webhook delivery tries since the server started, by outcome.
    deliveries: Mutex<BTreeMap<&'static str, u64>>,
}

/// An API request family: wire, method, route.
pub type ApiKey = (&'static str, String, String);

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            pickup: Histogram::new(PICKUP),
            runtime: Histogram::new(RUNTIME),
            pass: Histogram::new(FAST),
            commit: Histogram::new(FAST),
            delivery: Histogram::new(FAST),
            ended: Mutex::default(),
            api: Mutex::default(),
            deliveries: Mutex::default(),
        }
    }
}

/// One API request family's figures: (wire, method, route) and latency.
pub type ApiLatency = (ApiKey, HistogramSnapshot);

impl Recorder {
    /// Counts attempts that ended with `outcome`.
    pub fn ended(&self, outcome: &str, n: u64) {
        let mut m = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(outcome) {
            Some(v) => *v += n,
            None => {
                m.insert(outcome.to_owned(), n);
            }
        }
    }

    /// Counts a webhook delivery try that ended with `outcome`.
    pub fn delivery(&self, outcome: &'static str) {
        let mut m = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(outcome).or_default() += 1;
    }

    pub fn delivery_counts(&self) -> BTreeMap<&'static str, u64> {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn ended_counts(&self) -> BTreeMap<String, u64> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records an API request that took `d`: `wire` is "rest" or "grpc",
    /// `route` the route's template or the gRPC method, never a raw path
    /// (ids in paths would make a series per job).
    pub fn api(&self, wire: &'static str, method: &str, route: &str, d: Duration) {
        let h = {
            let mut m = self.api.lock().unwrap_or_else(|e| e.into_inner());
            let key = (wire, method.to_owned(), route.to_owned());
            m.entry(key)
                .or_insert_with(|| Arc::new(Histogram::new(FAST)))
                .clone()
        };
        h.observe(d);
    }

    pub fn api_latencies(&self) -> Vec<ApiLatency> {
        let m = self.api.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, h)| (k.clone(), h.snapshot())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_the_count() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(1));
        let mut l = h.local();
        l.observe_ms(1);
        l.observe_ms(20);
        h.add(&l);
        let s = h.snapshot();
        assert_eq!(s.count, 6);
        assert_eq!(
            s.buckets,
            [(0.001, 2), (0.01, 4), (f64::INFINITY, 6)],
            "{s:?}"
        );
        assert!((s.sum - 1.0315).abs() < 1e-9, "{}", s.sum);
    }
}
