//! `kiln grep`: a job's logs searched on the server, next to the files, so
//! a client gets the matching lines instead of every log.

use crate::logs::LogStore;
use kiln_api::{Error, Result};
use kiln_core::model::AttemptId;
use kiln_core::view::{GrepLine, GrepQuery, GrepResult};
use regex::bytes::{Regex, RegexBuilder};
use std::io::{BufRead, BufReader};

/// Lines one search returns at most: enough for a person, bounded for the
/// server.
pub const MAX_LINES: u32 = 10_000;
/// A longer matching line is cut here.
const MAX_LINE_BYTES: usize = 4096;
/// A pattern compiles to at most this much (a hostile pattern is refused,
/// not a server's memory).
const MAX_PATTERN_SIZE: usize = 1 << 20;

/// The query's pattern, or an error naming it.
pub fn pattern(q: &GrepQuery) -> Result<Regex> {
    if q.pattern.is_empty() {
        return Err(Error::Invalid(
            "pattern: empty; give a regular expression such as 'error|warning'".into(),
        ));
    }
    RegexBuilder::new(&q.pattern)
        .case_insensitive(q.ignore_case)
        .size_limit(MAX_PATTERN_SIZE)
        .build()
        .map_err(|e| {
            Error::Invalid(format!(
                "pattern {:?} is not a regular expression: {e}",
                q.pattern
            ))
        })
}

/// Searches each `(frame, attempt, number)` log in order, up to `max` lines.
pub fn search(
    logs: &LogStore,
    targets: &[(String, AttemptId, u32)],
    re: &Regex,
    max: u32,
) -> std::io::Result<GrepResult> {
    let max = if max == 0 {
        MAX_LINES
    } else {
        max.min(MAX_LINES)
    } as usize;
    let mut out = GrepResult::default();
    for (frame, attempt, number) in targets {
        let file = match std::fs::File::open(logs.path(*attempt)) {
            Ok(f) => f,
            // Started but nothing written yet (or the log was pruned).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.logs += 1;
        for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line = line?;
            if !re.is_match(&line) {
                continue;
            }
            if out.lines.len() == max {
                out.truncated = true;
                return Ok(out);
            }
            let line = &line[..line.len().min(MAX_LINE_BYTES)];
            out.lines.push(GrepLine {
                frame: frame.clone(),
                attempt: *number,
                line_number: i as u64 + 1,
                text: String::from_utf8_lossy(line)
                    .trim_end_matches('\r')
                    .to_string(),
            });
        }
    }
    Ok(out)
}
