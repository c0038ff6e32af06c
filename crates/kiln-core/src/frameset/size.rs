//! Sizing a frame set from its items, without expanding it: items apart
//! from each other or within one another are summed; others are counted
//! by merging their frames, in memory for the items alone.

use super::{Item, Mode};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How two items' frames relate, as far as a cheap look tells.
pub(super) struct Overlap {
    /// No two items share a frame: a set's frames need no record of those
    /// seen.
    pub disjoint: bool,
    /// How many distinct frames the items make, where known without
    /// expanding them: each item's frames are either apart from every
    /// other's or within another item (`1-100x10,1-100`, a frame named
    /// twice). `None` costs the caller a counting pass.
    pub distinct: Option<u128>,
}

/// Compares the items whose ranges meet, pair by pair, up to a bound;
/// past it, or where a pair is neither apart nor one within the other,
/// the size is not known, which costs the caller a counting pass
/// ([`count_distinct`]), never a wrong answer.
pub(super) fn overlap(items: &[Item]) -> Overlap {
    const MAX_PAIRS: usize = 4096;
    // Most sets are one item; a chunk of one frame always is.
    if let [item] = items {
        return Overlap {
            disjoint: true,
            distinct: Some(item.count()),
        };
    }
    let unknown = Overlap {
        disjoint: false,
        distinct: None,
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by_key(|&i| (items[i].lo(), i));
    // Items whose range reaches the current one's start.
    let mut open: Vec<usize> = Vec::new();
    // Items whose frames are all another's.
    let mut within = vec![false; items.len()];
    let mut disjoint = true;
    let mut pairs = 0;
    for i in order {
        let lo = items[i].lo();
        open.retain(|&j| items[j].hi() >= lo);
        for &j in &open {
            pairs += 1;
            if pairs > MAX_PAIRS {
                return unknown;
            }
            let (a, b) = (&items[i], &items[j]);
            if apart(a, b) {
                continue;
            }
            disjoint = false;
            // Of two equal items, the later one is the repeat.
            let (first, later) = (i.min(j), i.max(j));
            if items[later].is_within(&items[first]) {
                within[later] = true;
            } else if items[first].is_within(&items[later]) {
                within[first] = true;
            } else {
                return unknown;
            }
        }
        open.push(i);
    }
    let distinct = items
        .iter()
        .zip(&within)
        .filter(|(_, &w)| !w)
        .map(|(i, _)| i.count())
        .sum();
    Overlap {
        disjoint,
        distinct: Some(distinct),
    }
}

/// How many distinct frames the items make, their frames merged in
/// ascending order: time in proportion to the frames, memory to the items
/// (a record of frames seen would take up to tens of MB and, for sparse
/// sets, a second a million frames on a busy host).
pub(super) fn count_distinct(items: &[Item]) -> u64 {
    let mut ups: Vec<Up> = items.iter().map(Up::new).collect();
    let mut heap = BinaryHeap::with_capacity(ups.len());
    for (i, up) in ups.iter_mut().enumerate() {
        if let Some(f) = up.next() {
            heap.push(Reverse((f, i)));
        }
    }
    let mut count = 0;
    let mut last = None;
    while let Some(Reverse((f, i))) = heap.pop() {
        if last != Some(f) {
            count += 1;
            last = Some(f);
        }
        if let Some(g) = ups[i].next() {
            heap.push(Reverse((g, i)));
        }
    }
    count
}

/// An item's frames in ascending order. As a set, an interleave is its
/// whole range.
struct Up {
    next: i128,
    last: i128,
    step: i128,
    /// A `y` item's start and step: the frames it leaves out.
    skip: Option<(i128, i128)>,
}

impl Up {
    fn new(item: &Item) -> Up {
        let (lo, hi) = (i128::from(item.lo()), i128::from(item.hi()));
        let step = i128::from(item.step);
        let start = i128::from(item.start);
        match item.mode {
            Mode::Interleave => Up {
                next: lo,
                last: hi,
                step: 1,
                skip: None,
            },
            Mode::Every => {
                let n = (item.span() / u128::from(item.step)) as i128;
                let first = if item.end >= item.start {
                    start
                } else {
                    start - n * step
                };
                Up {
                    next: first,
                    last: first + n * step,
                    step,
                    skip: None,
                }
            }
            Mode::Skip => Up {
                next: lo,
                // Step 1 leaves nothing.
                last: if item.step == 1 { lo - 1 } else { hi },
                step: 1,
                skip: Some((start, step)),
            },
        }
    }

    fn next(&mut self) -> Option<i64> {
        while self.next <= self.last {
            let f = self.next;
            self.next += self.step;
            match self.skip {
                Some((start, step)) if (f - start).rem_euclid(step) == 0 => {}
                // Between two i64 frames, so an i64.
                _ => return Some(f as i64),
            }
        }
        None
    }
}

/// Whether two items surely share no frame.
fn apart(a: &Item, b: &Item) -> bool {
    if a.lo() > b.hi() || b.lo() > a.hi() {
        return true;
    }
    match (a.single(), b.single()) {
        (Some(x), _) => !b.contains(x),
        (_, Some(y)) => !a.contains(y),
        // Every frame of an `x` item is its start modulo its step: two
        // whose starts differ modulo the steps' gcd never meet (odd and
        // even frames, say, written as two items).
        _ if a.mode == Mode::Every && b.mode == Mode::Every => {
            let g = gcd(u128::from(a.step), u128::from(b.step)) as i128;
            (i128::from(a.start) - i128::from(b.start)).rem_euclid(g) != 0
        }
        _ => false,
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Item {
    fn lo(&self) -> i64 {
        self.start.min(self.end)
    }

    fn hi(&self) -> i64 {
        self.start.max(self.end)
    }

    /// The item's only frame, if it has exactly one.
    fn single(&self) -> Option<i64> {
        (self.mode != Mode::Skip && self.count() == 1).then_some(self.start)
    }

    /// Whether every frame of `self` is surely one of `other`'s.
    fn is_within(&self, other: &Item) -> bool {
        if let Some(f) = self.single() {
            return other.contains(f);
        }
        if self.lo() < other.lo() || self.hi() > other.hi() {
            return false;
        }
        match other.mode {
            Mode::Interleave => true,
            Mode::Every if other.step == 1 => true,
            Mode::Every => {
                let step = i128::from(other.step);
                self.mode == Mode::Every
                    && i128::from(self.step) % step == 0
                    && (i128::from(self.start) - i128::from(other.start)).rem_euclid(step) == 0
            }
            Mode::Skip => false,
        }
    }

    fn contains(&self, f: i64) -> bool {
        if f < self.lo() || f > self.hi() {
            return false;
        }
        let offset = (i128::from(f) - i128::from(self.start)).unsigned_abs();
        let step = u128::from(self.step);
        match self.mode {
            Mode::Every => offset % step == 0,
            Mode::Skip => offset % step != 0,
            Mode::Interleave => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::items;
    use super::*;

    #[test]
    fn apart_items() {
        let one = |s: &str| items(s, usize::MAX).unwrap().0[0];
        assert!(apart(&one("1-9x2"), &one("2-10x2")));
        assert!(apart(&one("1-100x4"), &one("2-100x2")));
        assert!(apart(&one("1-100x4"), &one("3-99x4")));
        assert!(!apart(&one("1-100x4"), &one("5-99x2")));
        assert!(apart(&one("4"), &one("1-9x2")));
        assert!(!apart(&one("5"), &one("1-9x2")));
        assert!(apart(&one("5"), &one("1-9y2")));
        assert!(!apart(&one("4"), &one("1-9y2")));
        assert!(!apart(&one("1-9:3"), &one("2-3")));
        assert!(apart(&one("1-3"), &one("4-9:3")));
        // A pair that only a closer look would tell apart is not known.
        assert!(!apart(&one("1-10y2"), &one("1-9x2")));
    }

    #[test]
    fn sets_sized_without_expanding() {
        let o = |s: &str| {
            let o = overlap(&items(s, usize::MAX).unwrap().0);
            (o.disjoint, o.distinct)
        };
        assert_eq!(o("1-1000000x2,2-1000000x2"), (true, Some(1_000_000)));
        assert_eq!(o("1,5,9,2-4"), (true, Some(6)));
        assert_eq!(o("1-10:3"), (true, Some(10)));
        assert_eq!(o("1-10,5"), (false, Some(10)));
        assert_eq!(o("5,1-10"), (false, Some(10)));
        assert_eq!(o("1-3,3-1"), (false, Some(3)));
        assert_eq!(o("1-100x10,1-100"), (false, Some(100)));
        assert_eq!(o("1-100x10,1-100:7,1-100x20"), (false, Some(100)));
        assert_eq!(o("3,3,3"), (false, Some(1)));
        assert_eq!(o("1-10,5-15"), (false, None));
        assert_eq!(o("1-100x2,1-100x3"), (false, None));
        // Past the bound on pairs compared, not known.
        let many: Vec<String> = (0..100).map(|i| format!("{i}-1000x100")).collect();
        assert!(o(&many[..60].join(",")).0);
        assert_eq!(o(&many.join(",")), (false, None));
    }
}
