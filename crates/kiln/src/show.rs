//! Listing commands: jobs, frames, log, hosts (`kiln job` is in `job.rs`).

use crate::fmt::{self, print_table, table};
use anyhow::Result;
use clap::Args;
use kiln_core::view::{DisplayState, FrameInfo, LogQuery, StateCounts};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct JobsArgs {
    /// Include finished and killed jobs.
    #[arg(long, short)]
    all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct FramesArgs {
    /// Job id or name.
    job: String,
    /// Only this layer.
    #[arg(long, short)]
    layer: Option<String>,
    /// Only frames in this state: waiting, depend, running, succeeded, dead, eaten.
    #[arg(long, short)]
    state: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct LogArgs {
    /// Job id or name.
    job: String,
    /// LAYER/FRAME (e.g. render/12) or a frame id.
    frame: String,
    /// Keep printing while the frame runs, until its log is complete.
    #[arg(long, short)]
    follow: bool,
    /// Which attempt (1 = first); default the latest.
    #[arg(long)]
    attempt: Option<u32>,
    /// Print only the lines of the latest attempt's log that match this
    /// regular expression, with their line numbers.
    #[arg(long, value_name = "REGEX", conflicts_with_all = ["follow", "attempt"])]
    grep: Option<String>,
    /// With --grep: ignore case.
    #[arg(long, short = 'i', requires = "grep")]
    ignore_case: bool,
}

#[derive(Args)]
pub struct HostsArgs {
    #[arg(long)]
    json: bool,
}

fn counts_cell(c: &StateCounts) -> String {
    let mut parts = Vec::new();
    for (n, label) in [
        (c.running, "run"),
        (c.waiting, "wait"),
        (c.depend, "dep"),
        (c.dead, "dead"),
        (c.eaten, "eaten"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {label}"));
        }
    }
    parts.join(", ")
}

pub async fn jobs(a: JobsArgs, server: &str) -> Result<ExitCode> {
    let jobs = crate::session::connect(server)
        .await?
        .list_jobs(a.all)
        .await?;
    if a.json {
        fmt::json(&jobs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        println!(
            "No {}jobs. Submit one with `kiln submit SPEC`{}.",
            if a.all { "" } else { "unfinished " },
            if a.all {
                ""
            } else {
                ", or see finished ones with --all"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "ID",
        "NAME",
        "SHOW",
        "USER",
        "PRI",
        "STATUS",
        "DONE",
        "FRAMES",
        "SUBMITTED",
    ]);
    for j in &jobs {
        t.add_row(vec![
            j.id.to_string(),
            j.name.clone(),
            j.show.clone(),
            j.user.clone(),
            j.priority.to_string(),
            j.status.to_string(),
            format!("{}/{}", j.counts.done(), j.total),
            counts_cell(&j.counts),
            fmt::ago(j.submitted_at),
        ]);
    }
    print_table(&t);
    Ok(ExitCode::SUCCESS)
}

fn exit_cell(f: &FrameInfo) -> String {
    match (f.exit_status, f.exit_signal, f.outcome) {
        (Some(c), _, _) => c.to_string(),
        (_, Some(s), _) => format!("sig {s}"),
        (_, _, Some(o)) if o != kiln_core::model::Outcome::Succeeded => o.as_str().to_lowercase(),
        _ => "-".into(),
    }
}

pub async fn frames(a: FramesArgs, server: &str) -> Result<ExitCode> {
    let frames = crate::session::connect(server)
        .await?
        .frames(&a.job, a.layer.as_deref(), a.state.as_deref())
        .await?;
    if a.json {
        fmt::json(&frames)?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = fmt::now_ms();
    // Why waiting frames wait, or why the last try of others ended so, only
    // when some are listed.
    let reason = |f: &FrameInfo| {
        f.why.as_ref().map(|w| w.text.clone()).or_else(|| {
            f.reason
                .clone()
                .filter(|_| f.state != DisplayState::Succeeded)
        })
    };
    let why = frames.iter().any(|f| reason(f).is_some());
    let mut head = vec![
        "ID", "FRAME", "STATE", "TRIES", "HOST", "CORES", "RUNTIME", "MAX RSS", "CPU", "EXIT",
    ];
    if why {
        head.push("WHY");
    }
    let mut t = table(&head);
    for f in &frames {
        let mut row = vec![
            f.id.to_string(),
            format!("{}/{}", f.layer, f.chunk),
            f.state.to_string(),
            f.attempts.to_string(),
            f.host.clone().unwrap_or_else(|| "-".into()),
            if f.cores == 0 {
                "-".into()
            } else {
                fmt::cores(f.cores)
            },
            fmt::opt_duration(f.runtime_ms(now)),
            fmt::kb(f.max_rss_kb),
            if f.cpu_ms == 0 {
                "-".into()
            } else {
                fmt::opt_duration(Some(f.cpu_ms))
            },
            exit_cell(f),
        ];
        if why {
            row.push(reason(f).unwrap_or_else(|| "-".into()));
        }
        t.add_row(row);
    }
    print_table(&t);
    if frames.is_empty() {
        println!("(no frames match)");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn log(a: LogArgs, server: &str) -> Result<ExitCode> {
    if let Some(pattern) = a.grep {
        return crate::grep::one_frame(a.job, a.frame, pattern, a.ignore_case, server).await;
    }
    let client = crate::session::connect(server).await?;
    let mut q = LogQuery {
        job: a.job,
        frame: a.frame,
        attempt: a.attempt,
        offset: 0,
        max_bytes: 0,
    };
    let mut out = std::io::stdout().lock();
    let mut said_waiting = false;
    loop {
        let s = client.read_log(&q).await?;
        if s.attempt_number == 0 {
            if !a.follow {
                anyhow::bail!(
                    "frame {} of job {} has not run yet ({}), so it has no log: add --follow to wait for it",
                    q.frame,
                    q.job,
                    s.frame_state
                );
            }
            if !said_waiting {
                eprintln!("waiting for {} to start ({})...", q.frame, s.frame_state);
                said_waiting = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        // Pin the attempt once known, so --follow never jumps to a retry.
        q.attempt.get_or_insert(s.attempt_number);
        out.write_all(&s.data)?;
        out.flush()?;
        q.offset = s.next_offset;
        if s.complete || (!a.follow && s.data.is_empty()) {
            break;
        }
        if s.data.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn hosts(a: HostsArgs, server: &str) -> Result<ExitCode> {
    let hosts = crate::session::connect(server).await?.hosts().await?;
    if a.json {
        fmt::json(&hosts)?;
        return Ok(ExitCode::SUCCESS);
    }
    if hosts.is_empty() {
        println!("No hosts yet. Start one with `kiln worker --server URL` on a render host.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "ID", "NAME", "ALLOC", "STATE", "LOCK", "CORES", "MEMORY", "GPUS", "FRAMES", "LOAD",
        "TAGS", "SEEN",
    ]);
    let mut manual = false;
    for h in &hosts {
        // Tags a wrangler gave are starred: `kiln host untag` takes them off.
        let tags: Vec<String> = h
            .tags
            .iter()
            .map(|t| {
                if h.manual_tags.contains(t) {
                    manual = true;
                    format!("{t}*")
                } else {
                    t.clone()
                }
            })
            .collect();
        t.add_row(vec![
            h.id.to_string(),
            h.name.clone(),
            h.allocation.clone(),
            format!("{:?}", h.state).to_uppercase(),
            format!("{:?}", h.lock).to_uppercase(),
            format!("{}/{}", fmt::cores(h.cores_used), fmt::cores(h.cores)),
            format!("{}/{}", fmt::kb(h.memory_used_kb), fmt::kb(h.memory_kb)),
            format!("{}/{}", h.gpus_used, h.gpus),
            h.running.to_string(),
            format!("{:.2}", h.load),
            tags.join(","),
            fmt::ago(h.last_seen),
        ]);
    }
    print_table(&t);
    if manual {
        println!("(* a tag given with `kiln host tag`)");
    }
    Ok(ExitCode::SUCCESS)
}
