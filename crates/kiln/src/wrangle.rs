//! Changing the farm's structure: facilities, allocations, shows,
//! subscriptions and limits. Each command is one admin request; the server
//! checks it whole, changes nothing if any part is wrong, and answers once
//! the change is durable.

use crate::parse::{self, cores_text, Cap};
use anyhow::{bail, Result};
use clap::Subcommand;
use kiln_core::farm::Admin;
use kiln_core::structure::UNLIMITED;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum FacilityCmd {
    /// Create a facility (a site). Its allocations are named FACILITY.POOL.
    Create { name: String },
    /// Remove a facility that has no allocations left.
    #[command(alias = "remove")]
    Rm { name: String },
}

#[derive(Subcommand)]
pub enum AllocCmd {
    /// Create an allocation (a pool of hosts), or change its tags.
    Create {
        /// FACILITY.POOL, e.g. local.gpu; the facility must exist.
        name: String,
        /// New hosts carrying any of these tags join this allocation
        /// (comma-separated); existing hosts move with `kiln host move`.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
    },
    /// Remove an allocation that has no hosts (its subscriptions go too).
    #[command(alias = "remove")]
    Rm { name: String },
}

#[derive(Subcommand)]
pub enum ShowCmd {
    /// Create a show. Shows are also created when a job names a new one,
    /// subscribed to every allocation of its facility with no cap.
    Create {
        name: String,
        /// Priority of jobs whose spec sets none (default 100).
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i32>,
        /// Cores a job may hold when its spec sets no max_cores.
        #[arg(long, value_name = "CORES", value_parser = parse::cores)]
        max_cores: Option<u32>,
    },
    /// Change a show: enable or disable it, or its job defaults.
    Set {
        name: String,
        /// Let the show's jobs start frames again and accept new jobs.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Start nothing new for the show (running frames finish) and
        /// refuse its new jobs.
        #[arg(long)]
        disable: bool,
        /// Priority of jobs whose spec sets none, from now on.
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i32>,
        /// Default job cap in cores, or `none` for no cap.
        #[arg(long, value_name = "CORES|none", value_parser = parse::max_cores)]
        max_cores: Option<Cap>,
    },
}

#[derive(Subcommand)]
pub enum SubCmd {
    /// Subscribe a show to an allocation, or change its subscription.
    /// A new subscription needs both --size and --burst.
    Set {
        show: String,
        /// FACILITY.POOL
        alloc: String,
        /// Cores guaranteed to the show in the allocation when it has work
        /// (may be fractional, e.g. 12.5).
        #[arg(long, value_name = "CORES", value_parser = parse::cores)]
        size: Option<u32>,
        /// The most cores the show may hold there when others leave cores
        /// idle, or `unlimited`; at least --size.
        #[arg(long, value_name = "CORES|unlimited", value_parser = parse::burst)]
        burst: Option<Cap>,
    },
    /// End a show's subscription to an allocation; its running frames finish.
    #[command(alias = "remove")]
    Rm { show: String, alloc: String },
}

#[derive(Subcommand)]
pub enum LimitCmd {
    /// Create a limit (e.g. a license count), or change its maximum.
    Set {
        name: String,
        /// Frames of layers naming it that may run at once, farm-wide.
        #[arg(long)]
        max: u32,
    },
    /// Remove a limit no unfinished layer names.
    #[command(alias = "remove")]
    Rm { name: String },
}

/// Sends one command and prints what changed.
pub async fn send(server: &str, cmd: Admin) -> Result<ExitCode> {
    let message = crate::session::connect(server).await?.admin(cmd).await?;
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}

pub async fn facility(cmd: FacilityCmd, server: &str) -> Result<ExitCode> {
    let cmd = match cmd {
        FacilityCmd::Create { name } => Admin::PutFacility { name },
        FacilityCmd::Rm { name } => Admin::RemoveFacility { name },
    };
    send(server, cmd).await
}

pub async fn alloc(cmd: AllocCmd, server: &str) -> Result<ExitCode> {
    let cmd = match cmd {
        AllocCmd::Create { name, tags } => Admin::PutAllocation {
            name,
            tags: tags.into_iter().filter(|t| !t.is_empty()).collect(),
        },
        AllocCmd::Rm { name } => Admin::RemoveAllocation { name },
    };
    send(server, cmd).await
}

pub async fn show(cmd: ShowCmd, server: &str) -> Result<ExitCode> {
    let client = crate::session::connect(server).await?;
    let shows = client.structure().await?.shows;
    let exists = |name: &str| shows.iter().any(|s| s.name == name);
    let cmd = match cmd {
        ShowCmd::Create {
            name,
            priority,
            max_cores,
        } => {
            if exists(&name) {
                bail!("show {name} already exists: change it with `kiln show set {name} ...`");
            }
            Admin::PutShow {
                name,
                enabled: None,
                default_priority: priority,
                default_max_cores: max_cores.map(Some),
            }
        }
        ShowCmd::Set {
            name,
            enable,
            disable,
            priority,
            max_cores,
        } => {
            if !exists(&name) {
                bail!(
                    "no show {name:?}: `kiln shows` lists them, `kiln show create {name}` makes it"
                );
            }
            if !enable && !disable && priority.is_none() && max_cores.is_none() {
                bail!("nothing to change: give --enable, --disable, --priority or --max-cores");
            }
            Admin::PutShow {
                name,
                enabled: (enable || disable).then_some(enable),
                default_priority: priority,
                default_max_cores: max_cores.map(Cap::centicores),
            }
        }
    };
    let message = client.admin(cmd).await?;
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}

pub async fn sub(cmd: SubCmd, server: &str) -> Result<ExitCode> {
    let (show, alloc, size, burst) = match cmd {
        SubCmd::Rm { show, alloc } => {
            return send(
                server,
                Admin::RemoveSubscription {
                    show,
                    allocation: alloc,
                },
            )
            .await
        }
        SubCmd::Set {
            show,
            alloc,
            size,
            burst,
        } => (show, alloc, size, burst),
    };
    let client = crate::session::connect(server).await?;
    let current = client
        .structure()
        .await?
        .subscriptions
        .into_iter()
        .find(|s| s.show == show && s.allocation == alloc);
    // What is not given stays as it is.
    let (size, burst) = match (&current, size, burst) {
        (_, Some(s), Some(b)) => (s, b.centicores().unwrap_or(UNLIMITED)),
        (Some(c), s, b) => (
            s.unwrap_or(c.size),
            b.map_or(c.burst.unwrap_or(UNLIMITED), |b| {
                b.centicores().unwrap_or(UNLIMITED)
            }),
        ),
        (None, _, _) => bail!(
            "{show} has no subscription to {alloc} yet: give both --size and --burst, \
             e.g. `kiln sub set {show} {alloc} --size 100 --burst 200`"
        ),
    };
    if burst < size {
        bail!(
            "--burst {} is less than --size {}: burst is the most the show may hold in {alloc}, \
             so give at least {} (or unlimited)",
            cores_text(burst),
            cores_text(size),
            cores_text(size)
        );
    }
    let message = client
        .admin(Admin::PutSubscription {
            show,
            allocation: alloc,
            size,
            burst,
        })
        .await?;
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}

pub async fn limit(cmd: LimitCmd, server: &str) -> Result<ExitCode> {
    let cmd = match cmd {
        LimitCmd::Set { name, max } => Admin::PutLimit { name, max },
        LimitCmd::Rm { name } => Admin::RemoveLimit { name },
    };
    send(server, cmd).await
}
