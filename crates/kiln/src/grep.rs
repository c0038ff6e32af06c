//! `kiln grep JOB REGEX` and `kiln log JOB FRAME --grep REGEX`: a job's logs
//! searched on the server, each line with the frame it is from.

use crate::fmt;
use anyhow::Result;
use clap::Args;
use kiln_core::view::{GrepQuery, GrepResult};
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct GrepArgs {
    /// Job id or name.
    job: String,
    /// A regular expression (Rust regex syntax: `error|warn`, `(?i)nan`).
    pattern: String,
    /// Only this layer's frames.
    #[arg(long)]
    layer: Option<String>,
    /// Ignore case.
    #[arg(long, short = 'i')]
    ignore_case: bool,
    /// At most this many lines (the server stops at 10,000).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    max: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Searches the latest attempt of each frame that has run; prints
/// `FRAME:LINE: text` (or `LINE: text` for one frame).
pub async fn grep(a: GrepArgs, server: &str) -> Result<ExitCode> {
    let q = GrepQuery {
        job: a.job,
        pattern: a.pattern,
        layer: a.layer,
        frame: None,
        ignore_case: a.ignore_case,
        max_lines: a.max,
    };
    run(q, a.json, server).await
}

/// `kiln log JOB FRAME --grep`: the same search, of one frame's latest log.
pub async fn one_frame(
    job: String,
    frame: String,
    pattern: String,
    ignore_case: bool,
    server: &str,
) -> Result<ExitCode> {
    let q = GrepQuery {
        job,
        pattern,
        layer: None,
        frame: Some(frame),
        ignore_case,
        max_lines: 0,
    };
    run(q, false, server).await
}

async fn run(q: GrepQuery, json: bool, server: &str) -> Result<ExitCode> {
    let client = crate::session::connect(server).await?;
    let one = q.frame.is_some();
    let found = client.grep(&q).await?;
    if json {
        fmt::json(&found)?;
        return Ok(ExitCode::SUCCESS);
    }
    print(&found, one)?;
    Ok(ExitCode::SUCCESS)
}

fn print(found: &GrepResult, one: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for l in &found.lines {
        if one {
            writeln!(out, "{}: {}", l.line_number, l.text)?;
        } else {
            writeln!(out, "{}:{}: {}", l.frame, l.line_number, l.text)?;
        }
    }
    out.flush()?;
    if found.truncated {
        eprintln!(
            "stopped after {} lines: narrow the pattern, or give --layer or --max",
            found.lines.len()
        );
    } else if found.lines.is_empty() {
        eprintln!("no line matches, in {} log(s)", found.logs);
    }
    Ok(())
}
