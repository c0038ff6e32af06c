//! `kiln job JOB`: a job's layers, what they ask for and why their waiting
//! frames wait; and `kiln job set|unavoid`, a wrangler's changes to a job.

use crate::fmt::{self, print_table, table};
use crate::parse::{self, cores_text, Cap};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kiln_core::farm::Admin;
use kiln_core::view::{JobDetail, LayerSummary};
use std::process::ExitCode;

/// Show a job; or change one with `kiln job set` / `kiln job unavoid`. A
/// job named `set` or `unavoid` is shown by its id.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct JobArgs {
    #[command(subcommand)]
    command: Option<JobCmd>,
    /// Job id or name (the latest job of that name).
    #[arg(required = true)]
    job: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum JobCmd {
    /// Change a job's priority or core cap; applies from the next
    /// scheduling pass, running frames are not stopped.
    Set {
        /// Job id or name.
        job: String,
        /// Higher runs first within its show (0 to 1000000).
        #[arg(long)]
        priority: Option<i32>,
        /// The most cores the job may hold at once, or `none` for no cap.
        #[arg(long, value_name = "CORES|none", value_parser = parse::max_cores)]
        max_cores: Option<Cap>,
    },
    /// Let a job use again a host it stopped using after its frames kept
    /// failing there (`kiln job JOB` lists them); without HOST, all of them.
    Unavoid {
        /// Job id or name.
        job: String,
        host: Option<String>,
    },
}

pub async fn job(a: JobArgs, server: &str) -> Result<ExitCode> {
    let cmd = match a.command {
        None => return show(a.job.unwrap_or_default(), a.json, server).await,
        Some(JobCmd::Set {
            job,
            priority,
            max_cores,
        }) => {
            if priority.is_none() && max_cores.is_none() {
                bail!("nothing to change: give --priority N and/or --max-cores N|none");
            }
            Admin::SetJob {
                job,
                priority,
                max_cores: max_cores.map(Cap::centicores),
            }
        }
        Some(JobCmd::Unavoid { job, host }) => Admin::Unavoid { job, host },
    };
    crate::wrangle::send(server, cmd).await
}

/// `2 lic, arnold` style cells: `-` when empty.
fn list_cell(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

async fn show(job: String, json: bool, server: &str) -> Result<ExitCode> {
    let d = crate::session::connect(server).await?.job(&job).await?;
    if json {
        fmt::json(&d)?;
        return Ok(ExitCode::SUCCESS);
    }
    header(&d);
    println!();
    layers(&d.layers);
    let waiting: Vec<&LayerSummary> = d.layers.iter().filter(|l| l.why.is_some()).collect();
    if !waiting.is_empty() {
        println!();
        println!("Why frames wait:");
        let mut t = table(&["LAYER", "WAITING", "REASON"]);
        for l in waiting {
            let c = &l.counts;
            t.add_row(vec![
                l.name.clone(),
                (c.waiting + c.depend).to_string(),
                l.why.as_ref().map(|w| w.text.clone()).unwrap_or_default(),
            ]);
        }
        print_table(&t);
    }
    Ok(ExitCode::SUCCESS)
}

fn header(d: &JobDetail) {
    let j = &d.job;
    println!("Job {} ({})  {}", j.name, j.id, j.status);
    let cap = match d.max_cores {
        Some(m) => format!(
            "  max cores {} (using {})",
            cores_text(m),
            cores_text(d.cores_used)
        ),
        None => String::new(),
    };
    println!(
        "  show {}  shot {}  user {}  priority {}{}{}",
        j.show,
        j.shot,
        j.user,
        j.priority,
        cap,
        if j.paused { "  PAUSED" } else { "" }
    );
    println!(
        "  frames {} done of {}, {} running, {} dead  submitted {}",
        j.counts.done(),
        j.total,
        j.counts.running,
        j.counts.dead,
        fmt::ago(j.submitted_at)
    );
    if !d.depends_on_jobs.is_empty() {
        let ids: Vec<String> = d.depends_on_jobs.iter().map(|i| i.to_string()).collect();
        println!("  waits for job(s) {}", ids.join(", "));
    }
    if !d.avoid_hosts.is_empty() {
        println!(
            "  avoids host(s) {} after its frames kept failing there; `kiln job unavoid {}` lets it use them again",
            d.avoid_hosts.join(", "),
            j.id
        );
    }
}

fn layers(layers: &[LayerSummary]) {
    // Columns most jobs never use appear only when a layer uses them.
    let gpus = layers.iter().any(|l| l.gpus > 0);
    let limits = layers.iter().any(|l| !l.limits.is_empty());
    let service = layers.iter().any(|l| l.service.is_some());
    let mut head = vec!["LAYER", "FRAMES", "CORES", "MEM"];
    if gpus {
        head.push("GPUS");
    }
    head.extend(["WAIT", "DEP", "RUN", "DONE", "DEAD", "EATEN"]);
    if limits {
        head.push("LIMITS");
    }
    if service {
        head.push("SERVICE");
    }
    head.push("DEPENDS");
    let mut t = table(&head);
    for l in layers {
        let c = &l.counts;
        let mut row = vec![
            format!("{}{}", l.name, if l.paused { " (paused)" } else { "" }),
            l.frames.clone(),
            l.cores_request.clone(),
            fmt::kb(l.memory_kb),
        ];
        if gpus {
            row.push(if l.gpu_memory_kb > 0 {
                format!("{} ({})", l.gpus, fmt::kb(l.gpu_memory_kb))
            } else {
                l.gpus.to_string()
            });
        }
        row.extend([
            c.waiting.to_string(),
            c.depend.to_string(),
            c.running.to_string(),
            c.succeeded.to_string(),
            c.dead.to_string(),
            c.eaten.to_string(),
        ]);
        if limits {
            row.push(list_cell(&l.limits));
        }
        if service {
            row.push(l.service.clone().unwrap_or_else(|| "-".into()));
        }
        row.push(l.depends.join(", "));
        t.add_row(row);
    }
    print_table(&t);
}
