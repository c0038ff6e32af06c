//! `kiln events`: the farm's events as a table or JSON lines, from a point
//! (an event number, a time) or only new ones; with `--follow` it keeps
//! streaming, and reconnects by itself after the last number it printed.

use crate::identity::{time_ms, utc};
use anyhow::{bail, Result};
use clap::Args;
use futures::StreamExt;
use kiln_core::event::{Event, EventFilter, EventKind, EventQuery};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct EventsArgs {
    /// Only this job's events (name or id).
    #[arg(long)]
    job: Option<String>,
    /// Only this show's events.
    #[arg(long)]
    show: Option<String>,
    /// Only these kinds, comma-separated: job.finished,frame.failed.
    #[arg(long)]
    kinds: Option<String>,
    /// Keep printing events as they happen (reconnecting after the last
    /// one printed if the server goes away) until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// Start after this event number, or with events made since a
    /// duration ago (1h, 7d) or a UTC date. Default: with --follow, only
    /// new events; without, the last hour's.
    #[arg(long)]
    since: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Without --follow, the stream is over once the catch-up has been quiet
/// this long (the store's pages come back to back).
const QUIET: Duration = Duration::from_secs(1);

pub async fn events(a: EventsArgs, server: &str) -> Result<ExitCode> {
    let kinds = match &a.kinds {
        Some(k) => EventKind::parse_list(k).map_err(|e| anyhow::anyhow!("--{e}"))?,
        None => Vec::new(),
    };
    let mut q = EventQuery {
        filter: EventFilter {
            job: a.job.clone(),
            show: a.show.clone(),
            kinds,
        },
        ..EventQuery::default()
    };
    match a.since.as_deref() {
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            q.after = Some(s.parse()?);
        }
        Some(s) => q.since = Some(time_ms("--since", s)?),
        None if a.follow => {}
        None => q.since = Some(time_ms("--since", "1h")?),
    }
    let mut out = std::io::stdout().lock();
    if !a.json {
        writeln!(
            out,
            "{:>8}  {:<20}  {:<16}  WHAT",
            "SEQ", "AT (UTC)", "KIND"
        )?;
    }
    let mut backoff = Duration::from_millis(250);
    loop {
        let client = match crate::session::connect(server).await {
            Ok(c) => c,
            Err(e) if a.follow && retry(&e) => {
                wait(&mut backoff).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut stream = match client.events(&q).await {
            Ok((from, s)) => {
                // Cut off before any event came, resume from where it began.
                if let Some(n) = from {
                    q.after = Some(n);
                    q.since = None;
                }
                Box::pin(s)
            }
            Err(e) if a.follow && retry(&e) => {
                wait(&mut backoff).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            let next = if a.follow {
                stream.next().await
            } else {
                match tokio::time::timeout(QUIET, stream.next()).await {
                    Ok(n) => n,
                    Err(_) => return Ok(ExitCode::SUCCESS),
                }
            };
            match next {
                Some(Ok(e)) => {
                    backoff = Duration::from_millis(250);
                    // From here on, numbers lead: resume after this one.
                    q.after = Some(e.seq);
                    q.since = None;
                    print(&mut out, &e, a.json)?;
                    out.flush()?;
                }
                Some(Err(e)) if !(a.follow && retry(&e)) => return Err(e.into()),
                Some(Err(_)) | None if a.follow => break,
                Some(Err(_)) | None => bail!("the server closed the stream"),
            }
        }
        wait(&mut backoff).await;
    }
}

/// Whether following should reconnect after `e` (the server went away)
/// rather than stop (it refused).
fn retry(e: &kiln_proto::Error) -> bool {
    matches!(
        e,
        kiln_proto::Error::Unavailable(_) | kiln_proto::Error::Unreached(_)
    )
}

async fn wait(backoff: &mut Duration) {
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
}

fn print(out: &mut impl Write, e: &Event, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(e)?)?;
        return Ok(());
    }
    let mut what = Vec::new();
    if let Some(j) = &e.job {
        what.push(format!("job {j}"));
    }
    match (&e.layer, &e.frame) {
        (Some(l), Some(f)) => what.push(format!("frame {l}/{f}")),
        (Some(l), None) => what.push(format!("layer {l}")),
        _ => {}
    }
    if let Some(n) = e.attempt {
        what.push(format!("try {n}"));
    }
    if let Some(h) = &e.host {
        what.push(format!("host {h}"));
    }
    if e.job.is_none() {
        if let Some(s) = &e.show {
            what.push(format!("show {s}"));
        }
    }
    if let Some(d) = e.detail.as_deref().filter(|d| !d.is_empty()) {
        what.push(format!("({d})"));
    }
    writeln!(
        out,
        "{:>8}  {:<20}  {:<16}  {}",
        e.seq,
        utc(e.at),
        e.kind.as_str(),
        what.join(" ")
    )?;
    Ok(())
}
