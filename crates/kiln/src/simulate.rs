//! `kiln simulate`: the real scheduler in virtual time over a scenario file,
//! so a wrangler can try a policy change before making it.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The scenario (YAML or JSON): hosts, shows and subscriptions, job
    /// streams. Examples live in sim/ (docs/simulate.md has the format).
    scenario: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Scale the farm and its work by this factor (0.1: a tenth of the
    /// hosts and frames), to try a big scenario quickly.
    #[arg(long)]
    scale: Option<f64>,
}

pub fn simulate(a: SimulateArgs) -> Result<()> {
    let path = a.scenario.display().to_string();
    let text = std::fs::read_to_string(&a.scenario).with_context(|| {
        format!("cannot read {path}; give a scenario file such as sim/shares.yaml")
    })?;
    let scenario = kiln_sim::Scenario::parse(&text).with_context(|| path.clone())?;
    let scenario = match a.scale {
        Some(f) if !(f.is_finite() && f > 0.0) => {
            bail!("--scale {f}: give a factor above 0, like 0.1 or 2")
        }
        Some(f) => scenario.scaled(f),
        None => scenario,
    };
    let report = kiln_sim::run(&scenario).with_context(|| path.clone())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
