//! `kiln probe` (hidden): a read load test. Issues one kind of read back to
//! back over one gRPC connection, as a dashboard or a pipeline polling the
//! farm would, and prints each read's start (Unix ms) and latency (µs) on a
//! line of its own, so a benchmark can line them up with what the farm was
//! doing (bench/reads.sh).

use crate::session;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, ValueEnum)]
enum Read {
    /// Every job (`kiln jobs --all`), a page of 1,000 at a time.
    Jobs,
    /// The first page of 100 jobs, as a dashboard's first screen.
    JobsPage,
    /// One job, as `kiln job` reads it (--job).
    Job,
    /// Every host, a page of 1,000 at a time.
    Hosts,
    /// The first page of 100 hosts, as a hosts table's first screen.
    HostsPage,
    /// SSE subscribers (--subscribers, --kinds): one line per event each
    /// receives (crates/kiln/src/probe_sse.rs).
    Events,
}

#[derive(Args)]
pub struct ProbeArgs {
    /// What to read.
    #[arg(long, value_enum, default_value = "jobs")]
    read: Read,
    /// The job `--read job` reads.
    #[arg(long, default_value = "")]
    job: String,
    /// Stop after this many seconds.
    #[arg(long, default_value = "60")]
    seconds: u64,
    /// Pause between reads, in milliseconds.
    #[arg(long, default_value = "0")]
    every_ms: u64,
    /// `--read events`: how many subscribers.
    #[arg(long, default_value = "1")]
    subscribers: usize,
    /// `--read events`: the kinds they follow (comma-separated; empty: all).
    #[arg(long, default_value = "")]
    kinds: String,
}

pub async fn probe(a: ProbeArgs, server: &str) -> Result<ExitCode> {
    if let Read::Events = a.read {
        crate::probe_sse::subscribers(server, a.subscribers, &a.kinds, a.seconds).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let client = session::connect(server).await?;
    let end = Instant::now() + Duration::from_secs(a.seconds);
    let mut out = std::io::stdout().lock();
    let page = kiln_core::view::JobQuery {
        limit: 100,
        ..kiln_core::view::JobQuery::every(true)
    };
    let hosts_page = kiln_core::view::HostQuery {
        after: None,
        limit: 100,
        ..Default::default()
    };
    while Instant::now() < end {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let t = Instant::now();
        match a.read {
            Read::Jobs => drop(client.list_jobs(true).await?),
            Read::JobsPage => drop(client.jobs_page(&page).await?),
            Read::Job => drop(client.job(&a.job).await?),
            Read::Hosts => drop(client.hosts().await?),
            Read::HostsPage => drop(client.hosts_page(&hosts_page).await?),
            Read::Events => unreachable!("handled above"),
        }
        writeln!(out, "{start} {}", t.elapsed().as_micros())?;
        out.flush()?;
        if a.every_ms > 0 {
            tokio::time::sleep(Duration::from_millis(a.every_ms)).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
