//! Listing the farm's structure: facilities, allocations, shows,
//! subscriptions, limits and services, each with what it holds now.

use crate::fmt::{self, print_table, table};
use crate::parse::cores_text;
use anyhow::{bail, Result};
use clap::Args;
use kiln_core::view::{StructureView, SubscriptionInfo};
use std::process::ExitCode;

#[derive(Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SubsArgs {
    /// Only this show's subscriptions.
    #[arg(long)]
    show: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

async fn fetch(server: &str) -> Result<StructureView> {
    Ok(crate::session::connect(server).await?.structure().await?)
}

fn or_dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

fn burst_text(burst: Option<u32>) -> String {
    burst.map_or_else(|| "unlimited".into(), cores_text)
}

pub async fn facilities(a: ListArgs, server: &str) -> Result<ExitCode> {
    let v = fetch(server).await?;
    if a.json {
        fmt::json(&v.facilities)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["NAME", "ALLOCS", "HOSTS"]);
    for f in &v.facilities {
        t.add_row(vec![
            f.name.clone(),
            f.allocations.to_string(),
            f.hosts.to_string(),
        ]);
    }
    print_table(&t);
    Ok(ExitCode::SUCCESS)
}

pub async fn allocations(a: ListArgs, server: &str) -> Result<ExitCode> {
    let v = fetch(server).await?;
    if a.json {
        fmt::json(&v.allocations)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["NAME", "FACILITY", "HOSTS UP", "CORES", "TAGS"]);
    for al in &v.allocations {
        t.add_row(vec![
            al.name.clone(),
            al.facility.clone(),
            format!("{}/{}", al.hosts_up, al.hosts),
            format!("{}/{}", fmt::cores(al.cores_used), fmt::cores(al.cores)),
            or_dash(Some(al.tags.join(","))),
        ]);
    }
    print_table(&t);
    println!("(CORES: in use / of hosts up and open; TAGS: new hosts with any of them join)");
    Ok(ExitCode::SUCCESS)
}

/// `alloc used/size (burst B)` for each of a show's subscriptions.
fn subs_cell(subs: &[&SubscriptionInfo]) -> String {
    let parts: Vec<String> = subs
        .iter()
        .map(|s| {
            format!(
                "{} {}/{} (burst {})",
                s.allocation,
                cores_text(s.used),
                cores_text(s.size),
                burst_text(s.burst)
            )
        })
        .collect();
    or_dash(Some(parts.join(", ")))
}

pub async fn shows(a: ListArgs, server: &str) -> Result<ExitCode> {
    let v = fetch(server).await?;
    if a.json {
        fmt::json(&v.shows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if v.shows.is_empty() {
        println!("No shows yet. A job's show is created when it is first submitted, or with `kiln show create NAME`.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "NAME",
        "STATE",
        "PRI",
        "MAX CORES",
        "JOBS",
        "CORES",
        "SUBSCRIPTIONS (USED/SIZE)",
    ]);
    for s in &v.shows {
        let subs: Vec<&SubscriptionInfo> = v
            .subscriptions
            .iter()
            .filter(|x| x.show == s.name)
            .collect();
        t.add_row(vec![
            s.name.clone(),
            if s.enabled { "enabled" } else { "DISABLED" }.to_string(),
            s.default_priority.to_string(),
            s.default_max_cores.map_or_else(|| "-".into(), cores_text),
            s.jobs.to_string(),
            cores_text(s.cores_used),
            subs_cell(&subs),
        ]);
    }
    print_table(&t);
    Ok(ExitCode::SUCCESS)
}

pub async fn subscriptions(a: SubsArgs, server: &str) -> Result<ExitCode> {
    let v = fetch(server).await?;
    if let Some(show) = &a.show {
        if !v.shows.iter().any(|s| &s.name == show) {
            bail!("no show {show:?}: `kiln shows` lists them");
        }
    }
    let subs: Vec<&SubscriptionInfo> = v
        .subscriptions
        .iter()
        .filter(|s| a.show.as_ref().is_none_or(|show| &s.show == show))
        .collect();
    if a.json {
        fmt::json(&subs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["SHOW", "ALLOC", "SIZE", "BURST", "USED"]);
    for s in &subs {
        t.add_row(vec![
            s.show.clone(),
            s.allocation.clone(),
            cores_text(s.size),
            burst_text(s.burst),
            cores_text(s.used),
        ]);
    }
    print_table(&t);
    if subs.is_empty() {
        println!("(no subscriptions; add one with `kiln sub set SHOW ALLOC --size N --burst N`)");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn limits(a: ListArgs, server: &str) -> Result<ExitCode> {
    let v = fetch(server).await?;
    if a.json {
        fmt::json(&v.limits)?;
        return Ok(ExitCode::SUCCESS);
    }
    if v.limits.is_empty() {
        println!("No limits. Create one with `kiln limit set NAME --max N`.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["NAME", "IN USE", "MAX"]);
    for l in &v.limits {
        t.add_row(vec![l.name.clone(), l.used.to_string(), l.max.to_string()]);
    }
    print_table(&t);
    Ok(ExitCode::SUCCESS)
}

pub async fn services(a: ListArgs, server: &str) -> Result<ExitCode> {
    let v = fetch(server).await?;
    if a.json {
        fmt::json(&v.services)?;
        return Ok(ExitCode::SUCCESS);
    }
    if v.services.is_empty() {
        println!("No services. Define one with `kiln service set NAME --cores 4 --memory 8G ...`.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "NAME", "SHOW", "CORES", "MEM", "GPUS", "GPU MEM", "TAGS", "TIMEOUT", "LIMITS",
    ]);
    let list = |l: &Option<Vec<String>>| or_dash(l.as_ref().map(|l| l.join(",")));
    for s in &v.services {
        t.add_row(vec![
            s.name.clone(),
            s.show.clone().unwrap_or_else(|| "(all)".into()),
            or_dash(s.cores.clone()),
            s.memory_kb.map_or_else(|| "-".into(), fmt::kb),
            s.gpus.map_or_else(|| "-".into(), |g| g.to_string()),
            s.gpu_memory_kb.map_or_else(|| "-".into(), fmt::kb),
            list(&s.tags),
            fmt::opt_duration(s.timeout_s.map(|t| t * 1000)),
            list(&s.limits),
        ]);
    }
    print_table(&t);
    println!("(-: not set; layers take it from the farm-wide service, then Kiln's default)");
    Ok(ExitCode::SUCCESS)
}
