//! Commands that change things: kill, pause, resume, retry, eat, host locks.

use anyhow::Result;
use clap::{Args, Subcommand};
use kiln_core::view::ActQuery;
use kiln_proto::client::Client;
use std::process::ExitCode;

#[derive(Args)]
pub struct ActArgs {
    /// Job id or name.
    job: String,
    /// What to act on; none: the whole job. Each is LAYER, LAYER/FRAMES
    /// (e.g. render/1-10) or a frame id.
    targets: Vec<String>,
    /// Only frames in this state (retry defaults to dead frames).
    #[arg(long, short)]
    state: Option<String>,
}

#[derive(Subcommand)]
pub enum HostCmd {
    /// Stop giving new frames to a host (running ones finish).
    Lock { host: String },
    /// Let a locked host take frames again.
    Unlock { host: String },
}

pub async fn act(action: &str, a: ActArgs, server: &str) -> Result<ExitCode> {
    let client = Client::connect(server).await?;
    let (_, message) = client
        .act(ActQuery {
            action: action.to_string(),
            job: a.job,
            targets: a.targets,
            state: a.state,
            user: crate::os_user(),
        })
        .await?;
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}

pub async fn host(cmd: HostCmd, server: &str) -> Result<ExitCode> {
    let client = Client::connect(server).await?;
    let (name, locked) = match cmd {
        HostCmd::Lock { host } => (host, true),
        HostCmd::Unlock { host } => (host, false),
    };
    let h = client.set_host_lock(&name, locked).await?;
    println!(
        "host {} is {}",
        h.name,
        if locked { "locked" } else { "open" }
    );
    Ok(ExitCode::SUCCESS)
}
