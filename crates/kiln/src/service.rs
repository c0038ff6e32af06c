//! `kiln service set|rm`: named layer defaults. `set` changes only the
//! fields given (and those named by --unset), keeping the rest of an
//! existing service, so a wrangler can tune one field at a time.

use crate::parse;
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand, ValueEnum};
use kiln_core::farm::Admin;
use kiln_core::model::{CoreRequest, TagReq};
use kiln_core::structure::Service;
use kiln_core::view::ServiceInfo;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// Create or change a service: defaults for layers that name it
    /// (`service: NAME` in a spec) and leave the field out. Applies to
    /// layers submitted from now on.
    Set(SetArgs),
    /// Remove a service (the farm-wide one, or a show's with --show).
    #[command(alias = "remove")]
    Rm {
        name: String,
        /// The show whose override to remove.
        #[arg(long)]
        show: Option<String>,
    },
}

#[derive(Args)]
pub struct SetArgs {
    name: String,
    /// Only for this show's jobs, overriding the farm-wide service of the
    /// same name; fields it leaves unset fall through to that one.
    #[arg(long)]
    show: Option<String>,
    /// Cores per frame: 4, 0.5, 4+ (at least 4), 2-8 (between), all (a
    /// whole idle host).
    #[arg(long, value_parser = parse::core_request)]
    cores: Option<CoreRequest>,
    /// Memory per frame, e.g. 8G; the worker kills a frame that uses more.
    #[arg(long, value_parser = parse::memory)]
    memory: Option<u64>,
    /// GPUs per frame.
    #[arg(long)]
    gpus: Option<u32>,
    /// GPU memory per frame, summed over its GPUs, e.g. 8G.
    #[arg(long, value_parser = parse::memory)]
    gpu_memory: Option<u64>,
    /// Host tags required, comma-separated; gpu|cuda means either.
    #[arg(long, value_delimiter = ',', value_parser = parse::tag_req)]
    tags: Option<Vec<TagReq>>,
    /// Run time after which a frame is killed and counted failed, e.g. 2h.
    #[arg(long, value_parser = parse::duration)]
    timeout: Option<u64>,
    /// Limits each running frame takes one of, comma-separated; each must
    /// exist (`kiln limit set NAME --max N`).
    #[arg(long, value_delimiter = ',')]
    limits: Option<Vec<String>>,
    /// Fields to clear, so layers fall through to the farm-wide service or
    /// Kiln's default (comma-separated).
    #[arg(long, value_delimiter = ',', value_enum)]
    unset: Vec<Field>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Field {
    Cores,
    Memory,
    Gpus,
    GpuMemory,
    Tags,
    Timeout,
    Limits,
}

/// A listed service back in the form the farm takes.
fn from_info(s: ServiceInfo) -> Result<Service> {
    let cores = s
        .cores
        .as_deref()
        .map(CoreRequest::parse)
        .transpose()
        .map_err(|e| anyhow!("the server listed service {} with bad cores: {e}", s.name))?;
    let tags = s
        .tags
        .map(|t| {
            t.iter()
                .map(|t| parse::tag_req(t))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| anyhow!("the server listed service {} with bad tags: {e}", s.name))?;
    Ok(Service {
        name: s.name,
        show: s.show,
        cores,
        memory_kb: s.memory_kb,
        gpus: s.gpus,
        gpu_memory_kb: s.gpu_memory_kb,
        tags,
        timeout_s: s.timeout_s,
        limits: s.limits,
    })
}

pub async fn service(cmd: ServiceCmd, server: &str) -> Result<ExitCode> {
    let a = match cmd {
        ServiceCmd::Rm { name, show } => {
            return crate::wrangle::send(server, Admin::RemoveService { name, show }).await
        }
        ServiceCmd::Set(a) => a,
    };
    let client = crate::session::connect(server).await?;
    let current = client
        .structure()
        .await?
        .services
        .into_iter()
        .find(|s| s.name == a.name && s.show == a.show);
    let mut s = match current {
        Some(info) => from_info(info)?,
        None => Service {
            name: a.name.clone(),
            show: a.show.clone(),
            ..Service::default()
        },
    };
    for f in &a.unset {
        match f {
            Field::Cores => s.cores = None,
            Field::Memory => s.memory_kb = None,
            Field::Gpus => s.gpus = None,
            Field::GpuMemory => s.gpu_memory_kb = None,
            Field::Tags => s.tags = None,
            Field::Timeout => s.timeout_s = None,
            Field::Limits => s.limits = None,
        }
    }
    s.cores = a.cores.or(s.cores);
    s.memory_kb = a.memory.or(s.memory_kb);
    s.gpus = a.gpus.or(s.gpus);
    s.gpu_memory_kb = a.gpu_memory.or(s.gpu_memory_kb);
    s.tags = a.tags.or(s.tags);
    s.timeout_s = a.timeout.or(s.timeout_s);
    s.limits = a
        .limits
        .map(|l| l.into_iter().filter(|l| !l.is_empty()).collect())
        .or(s.limits);
    let message = client.admin(Admin::PutService(s)).await?;
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}
