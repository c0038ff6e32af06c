//! `kiln fleet`: a load test. N simulated workers in one process, each
//! speaking the real worker protocol to a real server over a shared pool of
//! HTTP/2 connections, "running" frames by waiting out their simulated
//! runtime (see `sim` for the `KILN_SIM_*` variables a job sets).

mod host;
mod sim;
mod stats;

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_core::model::HostReport;
use kiln_core::size::{parse_duration_s, parse_memory_kb};
use kiln_proto::client::LinkChannel;
use stats::{Progress, Stats};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct FleetArgs {
    /// Number of simulated hosts.
    #[arg(long)]
    hosts: u32,
    /// Cores per host, e.g. 37 or 7.5.
    #[arg(long, default_value = "37")]
    cores: f64,
    /// Memory per host, e.g. 256G.
    #[arg(long, default_value = "256G")]
    memory: String,
    /// GPUs per host.
    #[arg(long, default_value = "0")]
    gpus: u32,
    /// Tags every host carries, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Host names are PREFIX-00001, PREFIX-00002, ...
    #[arg(long, default_value = "fleet")]
    name_prefix: String,
    /// Divide every simulated runtime by this (10: a 60s frame takes 6s).
    #[arg(long, default_value = "1.0")]
    speed: f64,
    /// Stop after this long (e.g. 90s, 10m); default: until Ctrl-C.
    #[arg(long)]
    duration: Option<String>,
    /// Exit as soon as this percentage of the fleet's cores is busy.
    #[arg(long)]
    until_busy: Option<f64>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Worker links per HTTP/2 connection.
    #[arg(long, default_value = "64")]
    hosts_per_connection: u32,
    /// Seed for the simulated runtimes and failures (with the attempt id).
    #[arg(long, default_value = "0")]
    seed: u64,
}

struct Plan {
    hosts: u32,
    report: HostReport,
    prefix: String,
    speed: f64,
    duration: Option<Duration>,
    until_busy: Option<f64>,
    per_connection: u32,
}

fn plan(a: &FleetArgs) -> Result<Plan> {
    if !(1..=1_000_000).contains(&a.hosts) {
        bail!("--hosts: {} is out of range; give 1 to 1000000", a.hosts);
    }
    if !(a.cores > 0.0 && a.cores <= 100_000.0) {
        bail!(
            "--cores: {} is not a core count; give a positive number such as 37",
            a.cores
        );
    }
    let memory_kb = parse_memory_kb(&a.memory).map_err(|e| anyhow::anyhow!("--memory: {e}"))?;
    let prefix = a.name_prefix.trim();
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        bail!(
            "--name-prefix: {:?} must be a non-empty word, like rack1",
            a.name_prefix
        );
    }
    if !(a.speed.is_finite() && a.speed > 0.0) {
        bail!(
            "--speed: {} is not a speed-up; give a positive number such as 10",
            a.speed
        );
    }
    let duration = a
        .duration
        .as_deref()
        .map(|d| match parse_duration_s(d) {
            Ok(0) => bail!("--duration: must be at least 1s"),
            Ok(s) => Ok(Duration::from_secs(s)),
            Err(e) => bail!("--duration: {e}"),
        })
        .transpose()?;
    if let Some(p) = a.until_busy {
        if !(p > 0.0 && p <= 100.0) {
            bail!("--until-busy: {p} is not a percentage; give a number above 0 and up to 100, such as 99");
        }
    }
    if !(1..=10_000).contains(&a.hosts_per_connection) {
        bail!("--hosts-per-connection: give 1 to 10000 (64 is a good start)");
    }
    let report = HostReport {
        name: String::new(),
        os: "linux".into(),
        cores: (a.cores * 100.0).round() as u32,
        memory_kb,
        total_memory_kb: memory_kb,
        gpus: a.gpus,
        tags: a.tags.iter().filter(|t| !t.is_empty()).cloned().collect(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    Ok(Plan {
        hosts: a.hosts,
        report,
        prefix: prefix.to_string(),
        speed: a.speed,
        duration,
        until_busy: a.until_busy,
        per_connection: a.hosts_per_connection,
    })
}

/// Why the fleet stopped.
enum Stop {
    Reached,
    Duration,
    Signal,
}

/// Enrolls the simulated hosts as real workers are: one join token (the
/// caller must be an admin), one join per host. A host left enrolled by an
/// earlier fleet is removed and joins again: its credential went with that
/// fleet.
async fn enroll(
    client: &kiln_proto::client::Client,
    server: &str,
    names: &[String],
) -> Result<Vec<String>> {
    use kiln_core::auth::identity::JoinRules;
    use kiln_core::auth::views::IdentityCmd;
    let made = client
        .identity(IdentityCmd::CreateToken {
            name: "kiln-fleet".into(),
            user: None,
            expires_in: Some(3_600_000),
            join: Some(JoinRules::default()),
        })
        .await?;
    let (token, id) = (
        made.token.unwrap_or_default(),
        made.token_id.unwrap_or_default(),
    );
    use futures::StreamExt;
    let mut joins = futures::stream::iter(names.iter().cloned())
        .map(|name: String| {
            let token = token.clone();
            async move {
                match kiln_proto::client::join(server, &token, &name).await {
                    Err(kiln_proto::Error::Forbidden(m)) if m.contains("already enrolled") => {
                        client
                            .identity(IdentityCmd::RemoveHost(name.clone()))
                            .await?;
                        kiln_proto::client::join(server, &token, &name).await
                    }
                    r => r,
                }
            }
        })
        .buffered(32);
    let mut out = Vec::with_capacity(names.len());
    while let Some(c) = joins.next().await {
        out.push(c?);
    }
    client.identity(IdentityCmd::RevokeToken(id)).await?;
    Ok(out)
}

pub async fn fleet(a: FleetArgs, server: &str) -> Result<ExitCode> {
    crate::local::init_logging("warn");
    let p = plan(&a)?;
    // Fail fast, with the client's usual advice, if no server is there;
    // the links themselves would retry forever.
    let client = crate::session::connect(server).await?;
    client.server_info().await?;

    let total = p.hosts as u64 * p.report.cores as u64;
    let stats = Arc::new(Stats::new(total, p.until_busy));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(host::Shared {
        speed: p.speed,
        seed: a.seed,
        stats: stats.clone(),
        stop: stop_rx,
    });
    let links = p.hosts.div_ceil(p.per_connection);
    let channels = (0..links)
        .map(|_| LinkChannel::lazy(server))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = (0..p.hosts)
        .map(|i| format!("{}-{:05}", p.prefix, i + 1))
        .collect();
    let credentials = enroll(&client, server, &names).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (name, credential)) in names.into_iter().zip(credentials).enumerate() {
        let mut report = p.report.clone();
        report.name = name.clone();
        let phase = i as f64 / p.hosts as f64;
        let h = host::SimHost::new(report, shared.clone(), phase);
        let auth = kiln_proto::client::HostAuth {
            host: name,
            credential,
        };
        tasks.spawn(host::run(
            h,
            channels[i / p.per_connection as usize].clone(),
            auth,
        ));
    }
    eprintln!(
        "kiln fleet: {} hosts of {} cores on {links} connection(s) to {server}",
        p.hosts,
        p.report.cores as f64 / 100.0
    );

    let mut progress = Progress::new(&stats);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + stats::TICK, stats::TICK);
    let deadline = p.duration.map(|d| tokio::time::Instant::now() + d);
    let interrupted = crate::local::shutdown_signal();
    tokio::pin!(interrupted);
    let why = loop {
        tokio::select! {
            _ = tick.tick() => eprintln!("{}", progress.line(&stats, p.hosts as u64)),
            _ = stats.reached.notified() => break Stop::Reached,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => break Stop::Duration,
            _ = &mut interrupted => break Stop::Signal,
        }
    };
    eprintln!("{}", progress.line(&stats, p.hosts as u64));
    let connected = stats.connected.load(Ordering::Relaxed);

    // Leave as workers do: goodbye, kill the frames, wait for their ends to
    // be acknowledged, so the server requeues them now rather than after
    // --down-after. Bounded: a stuck server must not hold the fleet.
    let _ = stop_tx.send(true);
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if left.is_err() {
        eprintln!(
            "kiln fleet: {} host(s) had not said goodbye after 10s; the server will mark them DOWN after its --down-after",
            tasks.len()
        );
        tasks.abort_all();
    }

    let mut summary = stats.summary(p.hosts as u64, p.until_busy, progress.peak_rate);
    summary.connected_hosts = connected;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&summary).context("writing the summary")?
        );
    } else {
        print!("{}", summary.text());
    }
    if p.until_busy.is_some() && !matches!(why, Stop::Reached) {
        eprintln!(
            "kiln fleet: stopped before --until-busy {}% was reached",
            p.until_busy.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
