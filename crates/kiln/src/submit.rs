//! `kiln submit`, and waiting on jobs with a live progress bar.

use crate::fmt;
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kiln_core::view::{JobStatus, Submitted};
use kiln_proto::client::Client;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct SubmitArgs {
    /// The job spec: a YAML or JSON file (see docs/spec.md), or - for stdin.
    spec: PathBuf,
    /// Wait for the job, showing progress; exit 0 only if every frame succeeded.
    #[arg(long, short)]
    wait: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Reads a spec file and submits it as the current OS user.
pub async fn submit_file(client: &Client, path: &Path) -> Result<Submitted> {
    let (bytes, base) = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("reading the spec from stdin")?;
        (bytes, std::env::current_dir().ok())
    } else {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the spec {}", path.display()))?;
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        (bytes, abs.parent().map(Path::to_path_buf))
    };
    let text =
        String::from_utf8(bytes).map_err(|e| kiln_proto::server::not_utf8(e.utf8_error()))?;
    let base = base.map(|b| b.display().to_string());
    Ok(client.submit(text, crate::os_user(), base).await?)
}

pub async fn submit(a: SubmitArgs, server: &str) -> Result<ExitCode> {
    let client = Client::connect(server).await?;
    let s = submit_file(&client, &a.spec)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\nnothing was submitted"))?;
    if a.json && !a.wait {
        fmt::json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !a.json {
        println!(
            "submitted job {} ({}) with {} frame(s)",
            s.name, s.id, s.frames
        );
    }
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let ok = wait(&client, &s.id.to_string(), a.json).await?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Follows a job until it is over or stuck failed; true if every frame
/// succeeded.
pub async fn wait(client: &Client, job: &str, quiet: bool) -> Result<bool> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} done  {msg}  {elapsed}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    loop {
        let d = client.job(job).await?;
        let j = &d.job;
        bar.set_prefix(j.name.clone());
        bar.set_length(j.total as u64);
        bar.set_position(j.counts.done() as u64);
        bar.set_message(format!(
            "{} running, {} failed",
            j.counts.running, j.counts.dead
        ));
        bar.tick();
        let over = matches!(
            j.status,
            JobStatus::Finished | JobStatus::Killed | JobStatus::Failed
        );
        if over {
            bar.finish_and_clear();
            let ok = j.status == JobStatus::Finished && j.counts.succeeded == j.total;
            if quiet {
                fmt::json(&d)?;
            } else {
                println!(
                    "job {} {}: {} succeeded, {} dead, {} eaten of {}",
                    j.name,
                    j.status.to_string().to_lowercase(),
                    j.counts.succeeded,
                    j.counts.dead,
                    j.counts.eaten,
                    j.total
                );
                if j.counts.dead > 0 {
                    println!(
                        "see why with `kiln frames {} --state dead` and `kiln log {} LAYER/FRAME`",
                        j.id, j.id
                    );
                }
            }
            return Ok(ok);
        }
        // Poll quickly at first (short jobs finish fast), then back off.
        let waited = started.elapsed();
        let pause = if waited < Duration::from_secs(2) {
            20
        } else if waited < Duration::from_secs(30) {
            100
        } else {
            500
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}
