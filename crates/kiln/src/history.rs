//! `kiln history`: every ended attempt (host, start, end, runtime, memory,
//! CPU, exit, why) as CSV or JSON lines, ready for pandas, read page by
//! page from the server.

use crate::identity::{time_ms, utc};
use anyhow::Result;
use clap::{Args, ValueEnum};
use kiln_core::view::{HistoryQuery, HistoryRow};
use std::io::Write;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Aligned columns, for a person.
    Table,
    /// One header line, then a line per attempt (RFC 4180 quoting).
    Csv,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Only this show's jobs.
    #[arg(long)]
    show: Option<String>,
    /// Only this user's jobs.
    #[arg(long)]
    user: Option<String>,
    /// Only this job (name or id).
    #[arg(long)]
    job: Option<String>,
    /// Attempts that ended at or after this: a duration ago (7d) or a UTC
    /// date (2026-12-01, 2026-12-01T09:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Attempts that ended before this (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// At most this many attempts (default: all).
    #[arg(long)]
    limit: Option<u64>,
    /// Attempts asked for per call.
    #[arg(long, default_value_t = 5000, hide = true)]
    page_size: u32,
}

pub async fn history(a: HistoryArgs, server: &str) -> Result<ExitCode> {
    let client = crate::session::connect(server).await?;
    let mut q = HistoryQuery {
        show: a.show,
        user: a.user,
        job: a.job,
        since: a
            .since
            .as_deref()
            .map(|t| time_ms("--since", t))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|t| time_ms("--until", t))
            .transpose()?,
        after: None,
        limit: a.page_size.clamp(1, 10_000),
    };
    let mut left = a.limit.unwrap_or(u64::MAX);
    let mut out = std::io::stdout().lock();
    let mut table = matches!(a.format, Format::Table).then(|| {
        crate::fmt::table(&[
            "JOB",
            "LAYER",
            "FRAME",
            "TRY",
            "HOST",
            "ENDED (UTC)",
            "RUNTIME",
            "MAX RSS",
            "RESULT",
        ])
    });
    if matches!(a.format, Format::Csv) {
        writeln!(out, "{}", HistoryRow::CSV_COLUMNS.join(","))?;
    }
    while left > 0 {
        let page = client.history(&q).await?;
        for r in page.rows.iter().take(left.min(usize::MAX as u64) as usize) {
            match (&mut table, a.format) {
                (Some(t), _) => {
                    t.add_row(vec![
                        r.job.clone(),
                        r.layer.clone(),
                        r.frame.to_string(),
                        r.attempt.to_string(),
                        r.host.clone(),
                        utc(r.ended_at),
                        crate::fmt::opt_duration(Some(r.runtime_ms.max(0) as u64)),
                        crate::fmt::kb(r.max_rss_kb),
                        r.outcome.clone(),
                    ]);
                }
                (None, Format::Jsonl) => writeln!(out, "{}", serde_json::to_string(r)?)?,
                (None, _) => writeln!(out, "{}", r.csv_line())?,
            }
            left -= 1;
        }
        match page.next {
            Some(next) if left > 0 => q.after = Some(next),
            _ => break,
        }
    }
    out.flush()?;
    drop(out);
    if let Some(t) = table {
        crate::fmt::print_table(&t);
    }
    Ok(ExitCode::SUCCESS)
}
