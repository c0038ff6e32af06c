//! A frame set's frames and tasks one at a time, from its items: what a
//! job's frame records are made from, so that reading a spec never holds
//! its frames, only their ranges.

use super::{Item, Mode, Seen, Task};
use std::fmt::Write;

/// The frames of a set in order, repeats dropped; see [`super::Frames::iter`].
pub struct FrameIter<'a> {
    items: &'a [Item],
    at: usize,
    /// The next offset into the current item.
    offset: u128,
    /// The current item's step, or for an interleave the current pass's.
    pass: u64,
    seen: Seen,
}

impl<'a> FrameIter<'a> {
    pub(super) fn new(items: &'a [Item], seen: Seen) -> Self {
        FrameIter {
            items,
            at: 0,
            offset: 0,
            pass: items.first().map_or(1, |i| i.step),
            seen,
        }
    }

    fn next_item(&mut self) {
        self.at += 1;
        self.offset = 0;
        self.pass = self.items.get(self.at).map_or(1, |i| i.step);
    }
}

impl Iterator for FrameIter<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        loop {
            let item = *self.items.get(self.at)?;
            if self.offset > item.span() {
                if item.mode == Mode::Interleave && self.pass > 1 {
                    self.pass /= 2;
                    self.offset = 0;
                } else {
                    self.next_item();
                }
                continue;
            }
            let offset = self.offset;
            match item.mode {
                // Step 1 skips everything: a huge empty range is not walked.
                Mode::Skip if item.step == 1 => {
                    self.next_item();
                    continue;
                }
                Mode::Skip => {
                    self.offset += 1;
                    if offset.is_multiple_of(u128::from(item.step)) {
                        continue;
                    }
                }
                Mode::Every | Mode::Interleave => self.offset += u128::from(self.pass),
            }
            let f = item.frame(offset);
            if self.seen.insert(f) {
                return Some(f);
            }
        }
    }
}

/// A set's frames cut into tasks of `size` consecutive frames, made as
/// they are taken; see [`super::Frames::tasks`].
pub struct Tasks<I> {
    frames: I,
    size: u32,
}

impl<I: Iterator<Item = i64>> Tasks<I> {
    /// A size of 0 is taken as 1.
    pub fn new(frames: I, size: u32) -> Self {
        Tasks {
            frames,
            size: size.max(1),
        }
    }
}

impl<I: Iterator<Item = i64>> Iterator for Tasks<I> {
    type Item = Task;

    fn next(&mut self) -> Option<Task> {
        let number = self.frames.next()?;
        let mut chunk = Compact::default();
        chunk.push(number);
        let mut last = number;
        for f in self.frames.by_ref().take(self.size as usize - 1) {
            chunk.push(f);
            last = f;
        }
        Some(Task {
            number,
            last,
            chunk: chunk.finish(),
        })
    }
}

/// [`super::compact`], fed one frame at a time, so a chunk of a million
/// frames is written without holding them.
#[derive(Default)]
pub(super) struct Compact {
    out: String,
    run: Option<Run>,
}

/// Frames taken but not yet written: `len` frames from `start` by `step`
/// (`None` while there is only one).
#[derive(Clone, Copy)]
struct Run {
    start: i64,
    step: Option<i64>,
    len: u64,
    last: i64,
}

impl Run {
    fn one(f: i64) -> Run {
        Run {
            start: f,
            step: None,
            len: 1,
            last: f,
        }
    }

    /// Whether the run is written as a range: two frames a step of one
    /// apart, or three or more.
    fn is_range(&self) -> bool {
        matches!(self.step, Some(1 | -1)) || self.len >= 3
    }
}

impl Compact {
    pub(super) fn push(&mut self, f: i64) {
        let Some(mut run) = self.run else {
            self.run = Some(Run::one(f));
            return;
        };
        match run.step {
            None => match f.checked_sub(run.start).filter(|&d| d != 0) {
                Some(d) => {
                    run.step = Some(d);
                    run.len = 2;
                    run.last = f;
                    self.run = Some(run);
                }
                None => {
                    self.single(run.start);
                    self.run = Some(Run::one(f));
                }
            },
            Some(d) if f.checked_sub(run.last) == Some(d) => {
                run.len += 1;
                run.last = f;
                self.run = Some(run);
            }
            Some(_) if run.is_range() => {
                self.range(run);
                self.run = Some(Run::one(f));
            }
            // Two frames that make no range: the first stands alone, the
            // second may start a run with `f`.
            Some(_) => {
                self.single(run.start);
                self.run = Some(Run::one(run.last));
                self.push(f);
            }
        }
    }

    pub(super) fn finish(mut self) -> String {
        match self.run.take() {
            None => {}
            Some(run) if run.len == 1 => self.single(run.start),
            Some(run) if run.is_range() => self.range(run),
            Some(run) => {
                self.single(run.start);
                self.single(run.last);
            }
        }
        self.out
    }

    fn sep(&mut self) {
        if !self.out.is_empty() {
            self.out.push(',');
        }
    }

    fn single(&mut self, f: i64) {
        self.sep();
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{f}");
    }

    fn range(&mut self, run: Run) {
        self.sep();
        let (start, end) = (run.start, run.last);
        let _ = match run.step {
            Some(1 | -1) => write!(self.out, "{start}-{end}"),
            Some(d) => write!(self.out, "{start}-{end}x{}", d.unsigned_abs()),
            None => write!(self.out, "{start}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::Frames;
    use super::*;

    #[test]
    fn a_chunk_of_a_million_is_written_without_its_frames() {
        let set = Frames::parse("1-1000000", 1_000_000).unwrap();
        let tasks: Vec<Task> = set.tasks(1_000_000).collect();
        assert_eq!(
            tasks,
            vec![Task {
                number: 1,
                last: 1_000_000,
                chunk: "1-1000000".into()
            }]
        );
    }
}
