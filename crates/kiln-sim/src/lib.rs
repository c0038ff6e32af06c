//! Kiln's simulator: the real farm state machine (`kiln_core::farm::Farm`)
//! and scheduler (`kiln_core::sched::plan`) run in virtual time over a
//! described farm, so wranglers can see what a policy change does (shares,
//! priorities, bursts, limits, reservations, bad hosts) before making it.
//!
//! ```no_run
//! let text = std::fs::read_to_string("sim/shares.yaml").unwrap();
//! let scenario = kiln_sim::Scenario::parse(&text).unwrap();
//! let report = kiln_sim::run(&scenario).unwrap();
//! print!("{}", report.to_text());
//! ```
//!
//! Pure: no IO, no clock but the wall-clock timing of planning passes.
//! See docs/simulate.md for the scenario format and what the figures mean.

mod check;
mod engine;
mod error;
mod fairshare;
mod jobspec;
mod measure;
mod report;
mod rng;
mod scenario;
mod setup;
mod text;
mod track;
mod units;

pub use error::{Error, Result};
pub use fairshare::{entitlements, Claim};
pub use report::{
    ClassFigures, Frames, JobFigures, LimitFigures, Percentiles, Placement, Planning, Report,
    ShowFigures, StreamFigures, Utilisation, WideFigures,
};
pub use scenario::{
    AllocationSpec, FarmSettings, HostClass, JobStream, LayerSpec, LimitSpec, Scenario,
    ServiceSpec, ShowSpec, SubscriptionSpec,
};
pub use units::{format_ms, Dur, Mem, Share, Spread};

/// Runs a scenario to its end and measures it.
pub fn run(scenario: &Scenario) -> Result<Report> {
    let t = std::time::Instant::now();
    let mut sim = engine::Sim::new(scenario)?;
    sim.run()?;
    Ok(sim.report(t.elapsed().as_secs_f64() * 1e3))
}
