//! Commands that change things: kill, pause, resume, retry, eat, and hosts
//! (locks, allocation, tags, repair).

use anyhow::Result;
use clap::{Args, Subcommand};
use kiln_core::farm::Admin;
use kiln_core::view::ActQuery;
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
    /// Move a host to another allocation (pool); running frames finish
    /// where they are.
    Move {
        host: String,
        /// FACILITY.POOL; `kiln allocs` lists them.
        alloc: String,
    },
    /// Give a host tags layers can ask for, on top of its worker's.
    Tag {
        host: String,
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Take tags given with `kiln host tag` off a host.
    Untag {
        host: String,
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Put a host in REPAIR: nothing new starts on it until `kiln host
    /// fixed`; running frames finish.
    Repair { host: String },
    /// Take a host out of REPAIR (Kiln also puts hosts there when frames of
    /// several jobs kept failing on them).
    Fixed { host: String },
    /// Revoke a host's credential and close its link: the machine must join
    /// again (`kiln worker --join`) to reconnect under that name.
    Remove { host: String },
}

pub async fn act(action: &str, a: ActArgs, server: &str) -> Result<ExitCode> {
    let client = crate::session::connect(server).await?;
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
    let admin = |cmd| crate::wrangle::send(server, cmd);
    let (name, locked) = match cmd {
        HostCmd::Lock { host } => (host, true),
        HostCmd::Unlock { host } => (host, false),
        HostCmd::Move { host, alloc } => {
            return admin(Admin::MoveHost {
                host,
                allocation: alloc,
            })
            .await
        }
        HostCmd::Tag { host, tags } => {
            return admin(Admin::TagHost {
                host,
                add: tags,
                remove: vec![],
            })
            .await
        }
        HostCmd::Untag { host, tags } => {
            return admin(Admin::TagHost {
                host,
                add: vec![],
                remove: tags,
            })
            .await
        }
        HostCmd::Repair { host } => return admin(Admin::Repair { host, on: true }).await,
        HostCmd::Fixed { host } => return admin(Admin::Repair { host, on: false }).await,
        HostCmd::Remove { host } => {
            let done = crate::session::connect(server)
                .await?
                .identity(kiln_core::auth::views::IdentityCmd::RemoveHost(host))
                .await?;
            println!("{}", done.message);
            return Ok(ExitCode::SUCCESS);
        }
    };
    let client = crate::session::connect(server).await?;
    let h = client.set_host_lock(&name, locked).await?;
    println!(
        "host {} is {}",
        h.name,
        if locked { "locked" } else { "open" }
    );
    Ok(ExitCode::SUCCESS)
}
