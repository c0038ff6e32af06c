//! A frame's memory and CPU over time, kept small whatever its length:
//! at most a fixed number of points; when full, every other point goes and
//! points are taken half as often from then on, so a ten-hour render and
//! a ten-second one both keep their whole shape.

use crate::model::Millis;
use serde::{Deserialize, Serialize};

/// One sample of a running frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageSample {
    /// When, in ms since the epoch.
    #[schema(value_type = i64)]
    pub t: Millis,
    /// Resident memory of its processes then.
    pub rss_kb: u64,
    /// CPU time its processes had used by then (user and system).
    pub cpu_ms: u64,
}

/// Samples of one attempt, thinned as it grows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Series {
    points: Vec<UsageSample>,
    cap: usize,
    /// One sample in `every` is kept.
    every: u32,
    skipped: u32,
    /// The newest sample, kept or not: the series always ends with it.
    last: Option<UsageSample>,
}

impl Series {
    /// A series of at most `cap` points (at least 4).
    pub fn new(cap: usize) -> Series {
        Series {
            cap: cap.max(4),
            every: 1,
            ..Series::default()
        }
    }

    pub fn push(&mut self, s: UsageSample) {
        self.last = Some(s);
        self.skipped += 1;
        if self.skipped < self.every {
            return;
        }
        self.skipped = 0;
        if self.points.len() + 1 >= self.cap {
            // Keep the even ones: the first stays, the spacing doubles.
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.every *= 2;
        }
        self.points.push(s);
    }

    /// The points, ending with the newest sample.
    pub fn points(&self) -> Vec<UsageSample> {
        let mut v = self.points.clone();
        if let Some(l) = self.last.filter(|l| v.last() != Some(l)) {
            v.push(l);
        }
        v
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64) -> UsageSample {
        UsageSample {
            t,
            rss_kb: t as u64 * 10,
            cpu_ms: t as u64,
        }
    }

    #[test]
    fn a_long_series_keeps_its_span_in_at_most_cap_points() {
        let mut series = Series::new(16);
        for t in 0..10_000 {
            series.push(s(t));
            let p = series.points();
            assert!(p.len() <= 16 + 1, "{} points at {t}", p.len());
            assert_eq!(p[0].t, 0, "the start stays");
            assert_eq!(p.last().unwrap().t, t, "the newest is last");
            assert!(p.windows(2).all(|w| w[0].t < w[1].t), "in order");
        }
        // Evenly spread over the span, give or take one spacing.
        let p = series.points();
        let gaps: Vec<i64> = p.windows(2).map(|w| w[1].t - w[0].t).collect();
        let (lo, hi) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
        assert!(*hi <= 2 * lo + 1 || gaps.len() < 3, "{gaps:?}");
    }

    #[test]
    fn a_short_series_keeps_every_sample() {
        let mut series = Series::new(16);
        assert!(series.is_empty() && series.points().is_empty());
        for t in 0..5 {
            series.push(s(t));
        }
        assert_eq!(series.points(), (0..5).map(s).collect::<Vec<_>>());
    }
}
