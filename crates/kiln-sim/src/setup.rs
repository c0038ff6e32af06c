//! Builds the farm a scenario describes, through the same doors the server
//! uses: wranglers' `Admin` commands for the structure, a worker's
//! `Register` for each host. Nothing is poked into the farm directly, so
//! the simulated farm is one the real server could hold.

use crate::error::{Error, Result};
use crate::jobspec::job_spec;
use crate::scenario::Scenario;
use kiln_core::farm::{Admin, Farm, FarmConfig, WorkerEvent};
use kiln_core::link::WorkerMsg;
use kiln_core::model::{Centicores, CoreRequest, HostId, HostReport, Resources, TagReq};
use kiln_core::spec::NewJob;
use kiln_core::structure::{Service, UNLIMITED};
use std::collections::{BTreeMap, HashMap};

/// A simulated host: what it offers and what its frames hold now.
#[derive(Debug, Clone)]
pub(crate) struct SimHost {
    pub class: u32,
    pub total: Resources,
    pub used: Resources,
    pub gpu: bool,
    pub fail_rate: f64,
    /// When the farm put it in REPAIR.
    pub repair_at: Option<i64>,
}

/// A show as the figures see it: its claim summed over its allocations.
#[derive(Debug, Clone)]
pub(crate) struct SimShow {
    pub name: String,
    pub size: f64,
    /// `None`: no cap.
    pub burst: Option<f64>,
}

pub(crate) struct Setup {
    pub farm: Farm,
    /// Host `i` registered with session `i + 1`.
    pub hosts: Vec<SimHost>,
    /// The farm's id of each host.
    pub host_of: HashMap<HostId, u32>,
    pub shows: Vec<SimShow>,
    /// Per stream, its first job; later ones differ only by name.
    pub templates: Vec<NewJob>,
}

impl Setup {
    pub fn new(s: &Scenario) -> Result<Setup> {
        s.check()?;
        let defaults = FarmConfig::default();
        let config = FarmConfig {
            avoid_after: s.farm.avoid_after.unwrap_or(defaults.avoid_after),
            repair_after_jobs: s.farm.repair_after.unwrap_or(defaults.repair_after_jobs),
            reserve_after_ms: s
                .farm
                .reserve_after
                .map_or(defaults.reserve_after_ms, |d| d.0),
            ..defaults
        };
        let mut farm = Farm::new(config);
        let mut admin = |cmd: Admin, field: &str| {
            farm.admin(cmd, 0)
                .map(drop)
                .map_err(|e| Error::field(field, e.to_string()))
        };
        for f in s.facility_names().into_iter().filter(|f| f != "local") {
            admin(Admin::PutFacility { name: f }, "facilities")?;
        }
        for (i, a) in s.allocations.iter().enumerate() {
            admin(
                Admin::PutAllocation {
                    name: a.name.clone(),
                    tags: a.tags.clone(),
                },
                &format!("allocations[{i}]"),
            )?;
        }
        let mut hosts = Vec::new();
        let mut host_of = HashMap::new();
        let mut alloc_cores: BTreeMap<String, f64> = BTreeMap::new();
        for (c, class) in s.hosts.iter().enumerate() {
            let total = Resources {
                cores: (class.cores * 100.0).round() as Centicores,
                memory_kb: class.memory.0,
                gpus: class.gpus,
                gpu_memory_kb: class.gpu_memory.0,
                scratch_kb: 0,
            };
            for n in 1..=class.count {
                let name = format!("{}-{n}", class.name);
                let session = hosts.len() as u64 + 1;
                let report = HostReport {
                    name: name.clone(),
                    os: "linux".into(),
                    cores: total.cores,
                    memory_kb: total.memory_kb,
                    total_memory_kb: total.memory_kb,
                    gpus: total.gpus,
                    gpu_memory_kb: total.gpu_memory_kb,
                    tags: class.tags.clone(),
                    version: "sim".into(),
                    ..HostReport::default()
                };
                farm.worker_event(
                    WorkerEvent::Message {
                        session,
                        msg: WorkerMsg::Register {
                            host: report,
                            running: vec![],
                        },
                    },
                    0,
                );
                if let Some(id) = farm.host_of_session(session) {
                    host_of.insert(id, hosts.len() as u32);
                }
                if let Some(a) = &class.allocation {
                    farm.admin(
                        Admin::MoveHost {
                            host: name,
                            allocation: a.clone(),
                        },
                        0,
                    )
                    .map_err(|e| Error::field(format!("hosts[{c}].allocation"), e.to_string()))?;
                }
                hosts.push(SimHost {
                    class: c as u32,
                    total,
                    used: Resources::default(),
                    gpu: total.gpus > 0,
                    fail_rate: class.fail_rate,
                    repair_at: None,
                });
            }
        }
        // Where each host really went (a tag rule may have placed it).
        for h in farm.hosts() {
            *alloc_cores.entry(h.allocation).or_default() += h.cores as f64 / 100.0;
        }
        let mut admin = |cmd: Admin, field: &str| {
            farm.admin(cmd, 0)
                .map(drop)
                .map_err(|e| Error::field(field, e.to_string()))
        };
        let mut shows = Vec::new();
        for (i, show) in s.shows.iter().enumerate() {
            let field = format!("shows[{i}]");
            admin(
                Admin::PutShow {
                    name: show.name.clone(),
                    enabled: None,
                    default_priority: show.priority,
                    default_max_cores: None,
                },
                &field,
            )?;
            let (mut size, mut burst) = (0.0, Some(0.0));
            let mut subs: Vec<(String, f64, Option<f64>)> = show
                .subscriptions
                .iter()
                .map(|sub| {
                    let cores = alloc_cores.get(&sub.allocation).copied().unwrap_or(0.0);
                    (
                        sub.allocation.clone(),
                        sub.size.cores(cores),
                        sub.burst.map(|b| b.cores(cores)),
                    )
                })
                .collect();
            // A show declared without subscriptions gets what a show
            // created by its first job gets: every allocation of the
            // default facility, size 0, no cap.
            if subs.is_empty() {
                subs = alloc_cores
                    .keys()
                    .filter(|a| a.starts_with("local."))
                    .map(|a| (a.clone(), 0.0, None))
                    .collect();
            }
            for (j, (alloc, sz, b)) in subs.into_iter().enumerate() {
                size += sz;
                burst = burst.zip(b).map(|(x, y)| x + y);
                let cc = |v: f64| (v * 100.0).round() as Centicores;
                let cmd = Admin::PutSubscription {
                    show: show.name.clone(),
                    allocation: alloc,
                    size: cc(sz),
                    burst: b.map_or(UNLIMITED, cc),
                };
                admin(cmd, &format!("shows[{i}].subscriptions[{j}]"))?;
            }
            shows.push(SimShow {
                name: show.name.clone(),
                size,
                burst,
            });
        }
        for stream in &s.jobs {
            if !shows.iter().any(|x| x.name == stream.show) {
                // Created with its first job: size 0, no cap.
                shows.push(SimShow {
                    name: stream.show.clone(),
                    size: 0.0,
                    burst: None,
                });
            }
        }
        for (i, l) in s.limits.iter().enumerate() {
            admin(
                Admin::PutLimit {
                    name: l.name.clone(),
                    max: l.max,
                },
                &format!("limits[{i}]"),
            )?;
        }
        for (i, svc) in s.services.iter().enumerate() {
            let cores = svc
                .cores
                .as_deref()
                .map(CoreRequest::parse)
                .transpose()
                .map_err(|m| Error::field(format!("services[{i}].cores"), m))?;
            let service = Service {
                name: svc.name.clone(),
                show: svc.show.clone(),
                cores,
                memory_kb: svc.memory.map(|m| m.0),
                gpus: svc.gpus,
                gpu_memory_kb: svc.gpu_memory.map(|m| m.0),
                tags: svc.tags.as_ref().map(|t| {
                    t.iter()
                        .map(|t| TagReq {
                            any_of: t.split('|').map(str::to_owned).collect(),
                        })
                        .collect()
                }),
                timeout_s: None,
                limits: svc.limits.clone(),
            };
            admin(Admin::PutService(service), &format!("services[{i}]"))?;
        }
        let templates = s
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| job_spec(i, j, 1))
            .collect::<Result<Vec<_>>>()?;
        farm.take_dirty();
        farm.take_outgoing();
        Ok(Setup {
            farm,
            hosts,
            host_of,
            shows,
            templates,
        })
    }
}
