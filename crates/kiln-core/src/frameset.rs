//! Frame sets: the `1-100x5,200` syntax layers use to name their frames, the
//! compact form Kiln writes back, and the split of a set into tasks.
//!
//! A set is read into its items ([`Frames`]) and sized without expanding
//! them (`size.rs`); its frames and tasks are made one at a time
//! (`lazy.rs`) only where they are used.

mod lazy;
mod size;

pub use lazy::{FrameIter, Tasks};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

const HINT: &str = "(write it like 1-100, 1-100x5 or 1,5,9)";

/// An ordered list of distinct frame numbers, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameSet {
    frames: Vec<i64>,
}

/// One unit of work of a layer: a chunk of consecutive frames of its set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The first frame of the chunk; names the task.
    pub number: i64,
    /// The last frame of the chunk.
    pub last: i64,
    /// The chunk's frames in compact form, e.g. `1-5` or `7`.
    pub chunk: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `A-BxS`: every S-th frame.
    Every,
    /// `A-ByS`: the frames `A-BxS` leaves out.
    Skip,
    /// `A-B:S`: every frame, coarse passes first so early frames cover the
    /// whole range.
    Interleave,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    start: i64,
    end: i64,
    step: u64,
    mode: Mode,
}

impl Item {
    fn span(&self) -> u128 {
        (i128::from(self.end) - i128::from(self.start)).unsigned_abs()
    }

    /// How many frames the item yields, computed without expanding it so a
    /// huge range is refused before anything is allocated.
    fn count(&self) -> u128 {
        let span = self.span();
        let step = u128::from(self.step);
        match self.mode {
            Mode::Every => span / step + 1,
            Mode::Skip => span - span / step,
            Mode::Interleave => span + 1,
        }
    }

    fn frame(&self, offset: u128) -> i64 {
        let offset = offset as i128;
        let start = i128::from(self.start);
        let frame = if self.end >= self.start {
            start + offset
        } else {
            start - offset
        };
        // Offsets never pass `end`, so the frame is within i64.
        frame as i64
    }
}

/// The frames a set has yielded so far, to drop repeats.
enum Seen {
    /// The items cannot repeat a frame.
    Nothing,
    /// One bit per number from `base`: for sets no wider than a few times
    /// their frame count, far smaller and faster than a hash set.
    Bits { base: i64, bits: Vec<u64> },
    /// Sparse sets.
    Hash(HashSet<i64>),
}

impl Seen {
    fn for_items(items: &[Item], total: u128) -> Seen {
        let lo = items.iter().map(|i| i.start.min(i.end)).min().unwrap_or(0);
        let hi = items.iter().map(|i| i.start.max(i.end)).max().unwrap_or(0);
        let width = (i128::from(hi) - i128::from(lo)) as u128 + 1;
        // A bitmap no bigger than the frames' own vector.
        if width <= 64 * total.max(1) {
            Seen::Bits {
                base: lo,
                bits: vec![0; width.div_ceil(64) as usize],
            }
        } else {
            Seen::Hash(HashSet::with_capacity(total as usize))
        }
    }

    /// Notes a frame; false if it was seen before.
    fn insert(&mut self, f: i64) -> bool {
        match self {
            Seen::Nothing => true,
            Seen::Bits { base, bits } => {
                let at = (i128::from(f) - i128::from(*base)) as usize;
                let (word, bit) = (at / 64, 1u64 << (at % 64));
                let new = bits[word] & bit == 0;
                bits[word] |= bit;
                new
            }
            Seen::Hash(h) => h.insert(f),
        }
    }
}

/// A frame set read into its items, nothing expanded: how many frames it
/// has is known, and its frames and tasks are made as they are taken.
#[derive(Debug, Clone)]
pub struct Frames {
    items: Vec<Item>,
    /// The frames the items yield, repeats counted.
    total: u64,
    /// Distinct frames.
    len: u64,
    /// Whether no two items can yield the same frame.
    disjoint: bool,
}

impl Frames {
    /// Reads a frame set, refusing one of more than `max_frames` frames
    /// (repeats counted). Its cost is that of its text, but for a set whose
    /// items partly overlap (`1-10,5-15`): that one is counted frame by
    /// frame, up to `max_frames`. Errors are user-facing and do not name
    /// the field.
    pub fn parse(s: &str, max_frames: usize) -> Result<Frames, String> {
        let (items, total) = items(s, max_frames)?;
        // Repeats only drop frames the items yield anyway, so a set with
        // none counted has none at all.
        if total == 0 {
            return Err(format!("{:?} has no frames {HINT}", s.trim()));
        }
        let overlap = size::overlap(&items);
        let len = match overlap.distinct {
            Some(n) => n as u64,
            None => size::count_distinct(&items),
        };
        Ok(Frames {
            items,
            total: total as u64,
            len,
            disjoint: overlap.disjoint,
        })
    }

    /// How many distinct frames the set has.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: a set without frames is refused.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frames in the order they are written, repeats dropped (the
    /// first stays).
    pub fn iter(&self) -> FrameIter<'_> {
        let interleaved = self.items.iter().any(|i| i.mode == Mode::Interleave);
        let seen = if self.disjoint && !interleaved {
            Seen::Nothing
        } else {
            Seen::for_items(&self.items, u128::from(self.total))
        };
        FrameIter::new(&self.items, seen)
    }

    /// How many tasks of `size` frames the set makes (0 is taken as 1).
    pub fn task_count(&self, size: u32) -> u64 {
        self.len.div_ceil(u64::from(size.max(1)))
    }

    /// The frames, in order, cut into tasks of `size` frames (the last may
    /// be shorter; 0 is taken as 1), each made as it is taken.
    pub fn tasks(&self, size: u32) -> Tasks<FrameIter<'_>> {
        Tasks::new(self.iter(), size)
    }
}

/// Reads a frame number (optionally negative) at the start of `s`.
fn number<'a>(s: &'a str, item: &str) -> Result<Option<(i64, &'a str)>, String> {
    let digits_at = usize::from(s.starts_with('-'));
    let len = s[digits_at..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(s.len() - digits_at);
    if len == 0 {
        return Ok(None);
    }
    let (text, rest) = s.split_at(digits_at + len);
    let n = text
        .parse()
        .map_err(|_| format!("{item:?}: {text} is too large for a frame number"))?;
    Ok(Some((n, rest)))
}

fn parse_item(item: &str) -> Result<Item, String> {
    let bad = || format!("{item:?} is not a frame range {HINT}");
    let (start, rest) = number(item, item)?.ok_or_else(bad)?;
    if rest.is_empty() {
        return Ok(Item {
            start,
            end: start,
            step: 1,
            mode: Mode::Every,
        });
    }
    let rest = rest.strip_prefix('-').ok_or_else(bad)?;
    let (end, rest) = number(rest, item)?.ok_or_else(bad)?;
    let mut chars = rest.chars();
    let mode = match chars.next() {
        None => {
            return Ok(Item {
                start,
                end,
                step: 1,
                mode: Mode::Every,
            })
        }
        Some('x') => Mode::Every,
        Some('y') => Mode::Skip,
        Some(':') => Mode::Interleave,
        Some(_) => return Err(bad()),
    };
    let step_text = chars.as_str();
    if step_text.is_empty() || !step_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let step: u64 = step_text
        .parse()
        .map_err(|_| format!("{item:?}: the step {step_text} is too large"))?;
    if step == 0 {
        return Err(format!("{item:?} has step 0; the step must be 1 or more"));
    }
    Ok(Item {
        start,
        end,
        step,
        mode,
    })
}

/// The items of a set and how many frames they yield together (repeats
/// counted), refusing a set of more than `max` frames; nothing expanded.
fn items(s: &str, max_frames: usize) -> Result<(Vec<Item>, u128), String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!("the frame set is empty {HINT}"));
    }
    let max = max_frames as u128;
    let mut items = Vec::new();
    let mut total: u128 = 0;
    for piece in text.split(',').map(str::trim) {
        if piece.is_empty() {
            return Err(format!(
                "{text:?} has an empty item; remove the extra comma"
            ));
        }
        let item = parse_item(piece)?;
        let n = item.count();
        if n > max {
            return Err(format!(
                "{piece:?} has {n} frames; a layer may have at most {max_frames}"
            ));
        }
        total += n;
        items.push(item);
    }
    if total > max {
        return Err(format!(
            "{text:?} has {total} frames; a layer may have at most {max_frames}"
        ));
    }
    Ok((items, total))
}

impl FrameSet {
    /// Parses a frame set, refusing one of more than `max_frames` frames
    /// (repeats counted) before expanding it. Errors are user-facing and do
    /// not name the field.
    pub fn parse(s: &str, max_frames: usize) -> Result<FrameSet, String> {
        let set = Frames::parse(s, max_frames)?;
        let mut frames = Vec::with_capacity(set.len() as usize);
        frames.extend(set.iter());
        Ok(FrameSet { frames })
    }

    /// How many frames a set has, repeats counted, without expanding it:
    /// what a job's limit is checked against before any set is expanded.
    /// The errors are [`FrameSet::parse`]'s.
    pub fn count(s: &str, max_frames: usize) -> Result<u64, String> {
        items(s, max_frames).map(|(_, n)| n as u64)
    }

    pub fn frames(&self) -> &[i64] {
        &self.frames
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl fmt::Display for FrameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&compact(&self.frames))
    }
}

/// Writes frames in the shortest usual form: step-1 runs as `A-B`, other
/// constant-step runs of three or more as `A-BxS`, the rest as a comma list.
/// Parsing the result gives back `frames` when they are distinct.
pub fn compact(frames: &[i64]) -> String {
    let mut out = lazy::Compact::default();
    frames.iter().for_each(|&f| out.push(f));
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    const MAX: usize = 1_000_000;

    fn frames(s: &str) -> Vec<i64> {
        FrameSet::parse(s, MAX).unwrap().frames().to_vec()
    }

    fn err(s: &str) -> String {
        FrameSet::parse(s, MAX).unwrap_err()
    }

    #[test]
    fn single_frames_and_lists() {
        assert_eq!(frames("7"), vec![7]);
        assert_eq!(frames("1,5,9"), vec![1, 5, 9]);
        assert_eq!(frames(" 3 , 1 ,2 "), vec![3, 1, 2]);
        assert_eq!(frames("0"), vec![0]);
    }

    #[test]
    fn ranges_in_both_directions() {
        assert_eq!(frames("1-5"), vec![1, 2, 3, 4, 5]);
        assert_eq!(frames("5-5"), vec![5]);
        assert_eq!(frames("10-1"), (1..=10).rev().collect::<Vec<_>>());
    }

    #[test]
    fn negative_numbers() {
        assert_eq!(frames("-5--1"), vec![-5, -4, -3, -2, -1]);
        assert_eq!(frames("-3-3"), (-3..=3).collect::<Vec<_>>());
        assert_eq!(frames("-2"), vec![-2]);
        assert_eq!(frames("2--2x2"), vec![2, 0, -2]);
    }

    #[test]
    fn steps() {
        assert_eq!(frames("1-10x3"), vec![1, 4, 7, 10]);
        assert_eq!(frames("1-10x4"), vec![1, 5, 9]);
        assert_eq!(frames("10-1x3"), vec![10, 7, 4, 1]);
        assert_eq!(frames("1-3x10"), vec![1]);
        assert_eq!(frames("1-10x1"), (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn inverted_steps() {
        assert_eq!(frames("1-10y3"), vec![2, 3, 5, 6, 8, 9]);
        assert_eq!(frames("10-1y3"), vec![9, 8, 6, 5, 3, 2]);
        assert_eq!(frames("1-10y2"), vec![2, 4, 6, 8, 10]);
    }

    #[test]
    fn interleave() {
        assert_eq!(frames("1-10:5"), vec![1, 6, 3, 5, 7, 9, 2, 4, 8, 10]);
        assert_eq!(frames("1-5:1"), vec![1, 2, 3, 4, 5]);
        assert_eq!(frames("1-8:4"), vec![1, 5, 3, 7, 2, 4, 6, 8]);
        let mut all = frames("1-100:7");
        all.sort();
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn duplicates_keep_first_position() {
        assert_eq!(frames("5,1-6,1"), vec![5, 1, 2, 3, 4, 6]);
        assert_eq!(frames("1-3,1-3"), vec![1, 2, 3]);
    }

    #[test]
    fn extreme_numbers_do_not_overflow() {
        let min = i64::MIN;
        let max = i64::MAX;
        assert_eq!(frames(&format!("{max}")), vec![max]);
        assert_eq!(
            frames(&format!("{}-{max}", max - 2)),
            vec![max - 2, max - 1, max]
        );
        assert_eq!(frames(&format!("{min}-{}", min + 1)), vec![min, min + 1]);
        assert_eq!(frames(&format!("{min}-{max}x{}", u64::MAX)), vec![min, max]);
        assert!(err(&format!("{min}-{max}")).contains("frames; a layer may have at most"));
        assert!(err("99999999999999999999").contains("too large"));
        assert!(err("1-2x99999999999999999999").contains("too large"));
    }

    #[test]
    fn malformed_items_are_named() {
        assert_eq!(
            err("1-x"),
            "\"1-x\" is not a frame range (write it like 1-100, 1-100x5 or 1,5,9)"
        );
        for bad in [
            "abc", "1-", "-", "1--", "1-5x", "1-5z2", "5x2", "1-5x2x", "1-5x-2", "1 - 5", "1.5",
        ] {
            let e = err(&format!("1,{bad}"));
            assert!(
                e.contains(&format!("{bad:?} is not a frame range")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn empty_input_and_items() {
        assert!(err("").contains("empty"));
        assert!(err("   ").contains("empty"));
        assert!(err("1,,2").contains("empty item"));
        assert!(err("1,").contains("empty item"));
        assert!(err(",1").contains("empty item"));
    }

    #[test]
    fn zero_step() {
        assert_eq!(
            err("1-10x0"),
            "\"1-10x0\" has step 0; the step must be 1 or more"
        );
        assert!(err("1-10y0").contains("step 0"));
        assert!(err("1-10:0").contains("step 0"));
    }

    #[test]
    fn a_set_with_no_frames_is_refused() {
        assert!(err("1-10y1").contains("has no frames"));
        let started = Instant::now();
        assert!(err("1-1000000000000y1").contains("has no frames"));
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn huge_ranges_are_refused_before_expanding() {
        let started = Instant::now();
        assert_eq!(
            err("1-1000000000"),
            "\"1-1000000000\" has 1000000000 frames; a layer may have at most 1000000"
        );
        assert!(err("1-1000000000:3").contains("1000000000 frames"));
        assert!(err("0-2000000000y2").contains("1000000000 frames"));
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn the_limit_counts_the_whole_set() {
        assert_eq!(FrameSet::parse("1-10", 10).unwrap().len(), 10);
        assert!(FrameSet::parse("1-11", 10).is_err());
        assert_eq!(
            FrameSet::parse("1-6,7-12", 10).unwrap_err(),
            "\"1-6,7-12\" has 12 frames; a layer may have at most 10"
        );
    }

    #[test]
    fn compact_forms() {
        assert_eq!(compact(&[1, 2, 3, 4, 5]), "1-5");
        assert_eq!(compact(&[1, 6, 11]), "1-11x5");
        assert_eq!(compact(&[7]), "7");
        assert_eq!(compact(&[3, 1]), "3,1");
        assert_eq!(compact(&[]), "");
        assert_eq!(compact(&[1, 2]), "1-2");
        assert_eq!(compact(&[1, 3]), "1,3");
        assert_eq!(compact(&[1, 5, 6, 7]), "1,5-7");
        assert_eq!(compact(&[1, 2, 3, 5, 7, 9]), "1-3,5-9x2");
        assert_eq!(compact(&[10, 9, 8]), "10-8");
        assert_eq!(compact(&[10, 7, 4]), "10-4x3");
        assert_eq!(compact(&[-3, -2, -1]), "-3--1");
        assert_eq!(
            compact(&[i64::MIN, i64::MAX]),
            format!("{},{}", i64::MIN, i64::MAX)
        );
    }

    #[test]
    fn display_is_compact() {
        assert_eq!(
            FrameSet::parse("1,2,3,10", MAX).unwrap().to_string(),
            "1-3,10"
        );
    }

    #[test]
    fn chunks_split_in_order() {
        let set = Frames::parse("1-10", MAX).unwrap();
        let summary: Vec<_> = set.tasks(4).map(|t| (t.number, t.last, t.chunk)).collect();
        assert_eq!(
            summary,
            vec![
                (1, 4, "1-4".into()),
                (5, 8, "5-8".into()),
                (9, 10, "9-10".into())
            ]
        );
        assert_eq!(set.task_count(4), 3);

        let set = Frames::parse("1-20x5,3", MAX).unwrap();
        let summary: Vec<_> = set.tasks(2).map(|t| (t.number, t.last, t.chunk)).collect();
        assert_eq!(
            summary,
            vec![
                (1, 6, "1,6".into()),
                (11, 16, "11,16".into()),
                (3, 3, "3".into())
            ]
        );
        assert_eq!(set.tasks(1).count(), 5);
        assert_eq!(set.tasks(0).count(), 5);
        assert_eq!(set.task_count(0), 5);
        let whole: Vec<Task> = set.tasks(100).collect();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].chunk, "1-16x5,3");
    }

    #[test]
    fn chunk_strings_parse_back_to_their_frames() {
        let set = FrameSet::parse("1-10:3", MAX).unwrap();
        let mut again = Vec::new();
        for t in Frames::parse("1-10:3", MAX).unwrap().tasks(3) {
            again.extend_from_slice(FrameSet::parse(&t.chunk, MAX).unwrap().frames());
        }
        assert_eq!(again, set.frames());
    }

    /// Every item expanded whole against a hash set: the first reading,
    /// before sets were expanded lazily, without repeats skipped the hash
    /// set and dense ones used a bitmap.
    fn with_hash_set(s: &str) -> Vec<i64> {
        let (items, _) = items(s, MAX).unwrap();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for item in &items {
            let span = item.span();
            let mut push = |offset: u128| {
                let f = item.frame(offset);
                if seen.insert(f) {
                    out.push(f);
                }
            };
            match item.mode {
                Mode::Every => (0..=span).step_by(item.step as usize).for_each(&mut push),
                Mode::Skip => (0..=span)
                    .filter(|o| o % u128::from(item.step) != 0)
                    .for_each(&mut push),
                Mode::Interleave => {
                    let mut step = item.step;
                    loop {
                        (0..=span).step_by(step as usize).for_each(&mut push);
                        if step <= 1 {
                            break;
                        }
                        step /= 2;
                    }
                }
            }
        }
        out
    }

    /// `compact` as it was first written, over a slice.
    fn slice_compact(frames: &[i64]) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut i = 0;
        while i < frames.len() {
            let start = frames[i];
            let step = frames
                .get(i + 1)
                .and_then(|&next| next.checked_sub(start))
                .filter(|&d| d != 0);
            let mut last = i;
            if let Some(d) = step {
                last = i + 1;
                while last + 1 < frames.len()
                    && frames[last + 1].checked_sub(frames[last]) == Some(d)
                {
                    last += 1;
                }
            }
            if !out.is_empty() {
                out.push(',');
            }
            let len = last - i + 1;
            let end = frames[last];
            let _ = match step {
                Some(1 | -1) => write!(out, "{start}-{end}"),
                Some(d) if len >= 3 => write!(out, "{start}-{end}x{}", d.unsigned_abs()),
                _ => {
                    last = i;
                    write!(out, "{start}")
                }
            };
            i = last + 1;
        }
        out
    }

    proptest! {
        #[test]
        fn every_way_to_drop_repeats_agrees(
            items in proptest::collection::vec(
                (-60i64..60, -60i64..60, 1u64..9, 0usize..4), 1..6)
        ) {
            let text: Vec<String> = items
                .iter()
                .map(|(a, b, step, kind)| match kind {
                    0 => format!("{a}"),
                    1 => format!("{a}-{b}x{step}"),
                    2 => format!("{a}-{b}y{}", step + 1),
                    _ => format!("{a}-{b}:{step}"),
                })
                .collect();
            let text = text.join(",");
            let expected = with_hash_set(&text);
            match FrameSet::parse(&text, MAX) {
                Ok(set) => prop_assert_eq!(set.frames(), &expected[..], "{}", text),
                Err(_) => prop_assert!(expected.is_empty(), "{}", text),
            }
            // Sized without expanding, and cut lazily into the tasks the
            // expanded frames make.
            let (parsed, _) = super::items(&text, MAX).unwrap();
            prop_assert_eq!(size::count_distinct(&parsed), expected.len() as u64, "{}", text);
            if let Ok(set) = Frames::parse(&text, MAX) {
                prop_assert_eq!(set.len(), expected.len() as u64, "{}", text);
                for size in [1, 2, 7] {
                    let tasks: Vec<Task> = set.tasks(size).collect();
                    let cut: Vec<Task> = expected
                        .chunks(size as usize)
                        .map(|c| Task {
                            number: c[0],
                            last: c[c.len() - 1],
                            chunk: slice_compact(c),
                        })
                        .collect();
                    prop_assert_eq!(set.task_count(size), cut.len() as u64);
                    prop_assert_eq!(tasks, cut, "{} by {}", text, size);
                }
            }
        }

        #[test]
        fn compact_is_the_slice_reading(v in proptest::collection::vec(
            prop_oneof![-20i64..20, Just(i64::MIN), Just(i64::MAX), any::<i64>()], 0..40)) {
            prop_assert_eq!(compact(&v), slice_compact(&v));
        }

        #[test]
        fn compact_round_trips_ascending(mut v in proptest::collection::vec(-1000i64..1000, 1..200)) {
            v.sort();
            v.dedup();
            let text = compact(&v);
            let back = FrameSet::parse(&text, usize::MAX).unwrap();
            prop_assert_eq!(back.frames(), &v[..], "{}", text);
        }

        #[test]
        fn compact_round_trips_any_order(v in proptest::collection::hash_set(any::<i64>(), 1..50)) {
            let v: Vec<i64> = v.into_iter().collect();
            let text = compact(&v);
            let back = FrameSet::parse(&text, usize::MAX).unwrap();
            prop_assert_eq!(back.frames(), &v[..], "{}", text);
        }

        #[test]
        fn parse_never_panics(s in "[-0-9xy:, ]{0,24}") {
            let _ = FrameSet::parse(&s, 10_000);
        }
    }
}
