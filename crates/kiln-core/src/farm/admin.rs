//! Wranglers' commands on the farm's structure (facilities, allocations,
//! shows, subscriptions, limits, services) and on hosts and jobs: each is
//! checked whole before anything changes, then recorded for the store.

use super::*;
use crate::error::{Error, Result};
use crate::structure::*;

/// The structure records in memory, keyed as the store keys them.
#[derive(Debug, Default, Clone)]
pub(super) struct Structure {
    pub facilities: BTreeMap<String, Facility>,
    pub allocations: BTreeMap<String, Allocation>,
    pub shows: BTreeMap<String, Show>,
    /// (show, allocation) → subscription.
    pub subs: BTreeMap<(String, String), Subscription>,
    pub limits: BTreeMap<String, Limit>,
    /// (name, show override) → service.
    pub services: BTreeMap<(String, Option<String>), Service>,
}

impl Structure {
    pub fn put(&mut self, r: Record) {
        match r {
            Record::Facility(f) => {
                self.facilities.insert(f.name.clone(), f);
            }
            Record::Allocation(a) => {
                self.allocations.insert(a.name.clone(), a);
            }
            Record::Show(s) => {
                self.shows.insert(s.name.clone(), s);
            }
            Record::Subscription(s) => {
                self.subs.insert((s.show.clone(), s.allocation.clone()), s);
            }
            Record::Limit(l) => {
                self.limits.insert(l.name.clone(), l);
            }
            Record::Service(s) => {
                self.services.insert((s.name.clone(), s.show.clone()), s);
            }
        }
    }

    /// The services that apply to a layer of `show` naming `name`, most
    /// specific first.
    pub fn services_for(&self, name: &str, show: &str) -> Vec<&Service> {
        [
            self.services.get(&(name.to_owned(), Some(show.to_owned()))),
            self.services.get(&(name.to_owned(), None)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// A wrangler's change. Every field that names something is checked before
/// anything changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Admin {
    PutFacility {
        name: String,
    },
    RemoveFacility {
        name: String,
    },
    /// Creates or updates an allocation `facility.pool`.
    PutAllocation {
        name: String,
        tags: Vec<String>,
    },
    RemoveAllocation {
        name: String,
    },
    /// Creates a show, or changes the given fields of one.
    PutShow {
        name: String,
        enabled: Option<bool>,
        default_priority: Option<i32>,
        /// `Some(None)` clears the cap.
        default_max_cores: Option<Option<Centicores>>,
    },
    PutSubscription {
        show: String,
        allocation: String,
        size: Centicores,
        burst: Centicores,
    },
    RemoveSubscription {
        show: String,
        allocation: String,
    },
    PutLimit {
        name: String,
        max: u32,
    },
    RemoveLimit {
        name: String,
    },
    PutService(Service),
    RemoveService {
        name: String,
        show: Option<String>,
    },
    /// Moves a host to another allocation.
    MoveHost {
        host: String,
        allocation: String,
    },
    /// Adds and removes a host's manual tags.
    TagHost {
        host: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// Puts a host in REPAIR (nothing new starts on it) or takes it out.
    Repair {
        host: String,
        on: bool,
    },
    SetJob {
        job: String,
        priority: Option<i32>,
        max_cores: Option<Option<Centicores>>,
    },
    /// Lets a job use hosts it avoided after failures: one, or all.
    Unavoid {
        job: String,
        host: Option<String>,
    },
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} {name:?} is not a valid name; use 1-128 letters, digits, '.', '_', ':' or '-'"
        )))
    }
}

impl Farm {
    /// Applies a wrangler's change; returns a line saying what changed.
    pub fn admin(&mut self, cmd: Admin, now: Millis) -> Result<String> {
        self.clock = now;
        let s = &self.structure;
        match cmd {
            Admin::PutFacility { name } => {
                check_name("facility", &name)?;
                if name.contains('.') {
                    return Err(Error::Invalid(format!(
                        "facility {name:?} contains '.'; allocations are named facility.pool, so facility names cannot"
                    )));
                }
                let created = !s.facilities.contains_key(&name);
                self.put(Record::Facility(Facility { name: name.clone() }));
                Ok(format!(
                    "facility {name} {}",
                    if created { "created" } else { "unchanged" }
                ))
            }
            Admin::RemoveFacility { name } => {
                self.need_facility(&name)?;
                if let Some(a) = s.allocations.values().find(|a| a.facility == name) {
                    return Err(Error::Invalid(format!(
                        "facility {name} still has allocation {}; remove its allocations first",
                        a.name
                    )));
                }
                self.remove("facility", &name);
                Ok(format!("facility {name} removed"))
            }
            Admin::PutAllocation { name, tags } => {
                check_name("allocation", &name)?;
                let Some((facility, _)) = Allocation::split_name(&name) else {
                    return Err(Error::Invalid(format!(
                        "allocation {name:?} must be named facility.pool, like local.general"
                    )));
                };
                let facility = facility.to_owned();
                self.need_facility(&facility)?;
                for t in &tags {
                    check_name("tag", t)?;
                }
                let created = !s.allocations.contains_key(&name);
                self.put(Record::Allocation(Allocation {
                    name: name.clone(),
                    facility,
                    tags,
                }));
                Ok(format!(
                    "allocation {name} {}",
                    if created { "created" } else { "updated" }
                ))
            }
            Admin::RemoveAllocation { name } => {
                self.need_allocation(&name)?;
                if name == DEFAULT_ALLOCATION {
                    return Err(Error::Invalid(format!(
                        "{name} is where new hosts go; it cannot be removed"
                    )));
                }
                if let Some(h) = self.hosts.values().find(|h| h.host.allocation == name) {
                    return Err(Error::Invalid(format!(
                        "allocation {name} still has host {}; move its hosts with `kiln host move HOST ALLOC` first",
                        h.host.report.name
                    )));
                }
                let subs: Vec<String> = s
                    .subs
                    .values()
                    .filter(|x| x.allocation == name)
                    .map(|x| format!("{}@{}", x.show, x.allocation))
                    .collect();
                for key in &subs {
                    self.remove("subscription", key);
                }
                self.remove("allocation", &name);
                Ok(format!(
                    "allocation {name} removed ({} subscriptions with it)",
                    subs.len()
                ))
            }
            Admin::PutShow {
                name,
                enabled,
                default_priority,
                default_max_cores,
            } => {
                check_name("show", &name)?;
                if let Some(p) = default_priority {
                    if !(0..=1_000_000).contains(&p) {
                        return Err(Error::Invalid(format!(
                            "default priority {p} is out of range; give 0 to 1000000"
                        )));
                    }
                }
                let created = !s.shows.contains_key(&name);
                let mut show = s
                    .shows
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| Show::new(&name));
                if let Some(e) = enabled {
                    show.enabled = e;
                }
                if let Some(p) = default_priority {
                    show.default_priority = p;
                }
                if let Some(m) = default_max_cores {
                    show.default_max_cores = m;
                }
                self.put(Record::Show(show));
                Ok(format!(
                    "show {name} {}",
                    if created { "created" } else { "updated" }
                ))
            }
            Admin::PutSubscription {
                show,
                allocation,
                size,
                burst,
            } => {
                self.need_show(&show)?;
                self.need_allocation(&allocation)?;
                if burst < size {
                    return Err(Error::Invalid(format!(
                        "burst ({}) is less than size ({}); burst is the cap and must be at least the size",
                        burst / 100,
                        size / 100
                    )));
                }
                self.put(Record::Subscription(Subscription {
                    show: show.clone(),
                    allocation: allocation.clone(),
                    size,
                    burst,
                }));
                Ok(format!("{show} subscribes to {allocation}"))
            }
            Admin::RemoveSubscription { show, allocation } => {
                let key = (show.clone(), allocation.clone());
                if !s.subs.contains_key(&key) {
                    return Err(Error::NotFound(format!(
                        "{show} has no subscription to {allocation}; `kiln subs` lists them"
                    )));
                }
                self.remove("subscription", &format!("{show}@{allocation}"));
                Ok(format!(
                    "{show} no longer subscribes to {allocation}; its running frames finish"
                ))
            }
            Admin::PutLimit { name, max } => {
                check_name("limit", &name)?;
                let created = !s.limits.contains_key(&name);
                self.put(Record::Limit(Limit {
                    name: name.clone(),
                    max,
                }));
                Ok(format!(
                    "limit {name} {} (max {max})",
                    if created { "created" } else { "set" }
                ))
            }
            Admin::RemoveLimit { name } => {
                if !s.limits.contains_key(&name) {
                    return Err(Error::NotFound(format!(
                        "no limit {name:?}; `kiln limits` lists them"
                    )));
                }
                let users = self
                    .layers
                    .values()
                    .filter(|l| {
                        l.counts.waiting + l.counts.running > 0 && l.layer.limits.contains(&name)
                    })
                    .count();
                if users > 0 {
                    return Err(Error::Invalid(format!(
                        "limit {name} is taken by {users} unfinished layers; set its max instead (`kiln limit set {name} --max N`)"
                    )));
                }
                self.remove("limit", &name);
                Ok(format!("limit {name} removed"))
            }
            Admin::PutService(svc) => {
                check_name("service", &svc.name)?;
                if let Some(show) = &svc.show {
                    self.need_show(show)?;
                }
                for l in svc.limits.iter().flatten() {
                    self.need_limit(l)?;
                }
                let name = match &svc.show {
                    Some(show) => format!("service {} for show {show}", svc.name),
                    None => format!("service {}", svc.name),
                };
                self.put(Record::Service(svc));
                Ok(format!(
                    "{name} set; it applies to layers submitted from now on"
                ))
            }
            Admin::RemoveService { name, show } => {
                let key = (name.clone(), show.clone());
                if !s.services.contains_key(&key) {
                    return Err(Error::NotFound(format!(
                        "no service {name:?}; `kiln services` lists them"
                    )));
                }
                let r = Record::Service(s.services[&key].clone());
                self.remove("service", &r.key());
                Ok(format!("service {} removed", r.key()))
            }
            Admin::MoveHost { host, allocation } => {
                let id = self.resolve_host(&host)?;
                self.need_allocation(&allocation)?;
                let h = self.hosts.get_mut(&id).expect("resolved");
                h.host.allocation = allocation.clone();
                self.dirty.hosts.insert(id);
                Ok(format!(
                    "host {host} moved to {allocation}; its running frames finish where they are"
                ))
            }
            Admin::TagHost { host, add, remove } => {
                let id = self.resolve_host(&host)?;
                for t in add.iter().chain(&remove) {
                    check_name("tag", t)?;
                }
                let h = self.hosts.get_mut(&id).expect("resolved");
                h.host.tags.retain(|t| !remove.contains(t));
                for t in add {
                    if !h.host.tags.contains(&t) {
                        h.host.tags.push(t);
                    }
                }
                h.host.tags.sort();
                let tags = h.host.all_tags().join(",");
                self.dirty.hosts.insert(id);
                self.refresh_tags(id);
                Ok(format!("host {host} tags: {tags}"))
            }
            Admin::Repair { host, on } => {
                let id = self.resolve_host(&host)?;
                self.set_repair(id, on, now);
                Ok(format!(
                    "host {host} {}",
                    if on {
                        "is in REPAIR: nothing new starts on it"
                    } else {
                        "is back in service"
                    }
                ))
            }
            Admin::SetJob {
                job,
                priority,
                max_cores,
            } => {
                let id = self.resolve_job(&job)?;
                if let Some(p) = priority {
                    if !(0..=1_000_000).contains(&p) {
                        return Err(Error::Invalid(format!(
                            "priority {p} is out of range; give 0 to 1000000"
                        )));
                    }
                }
                let j = &mut self.jobs.get_mut(&id).expect("resolved").job;
                if let Some(p) = priority {
                    j.priority = p;
                }
                if let Some(m) = max_cores {
                    j.max_cores = m;
                }
                self.dirty.jobs.insert(id);
                Ok(format!("job {} updated", j.name))
            }
            Admin::Unavoid { job, host } => {
                let id = self.resolve_job(&job)?;
                let host = match host {
                    Some(h) => Some(self.resolve_host(&h)?),
                    None => None,
                };
                let j = &mut self.jobs.get_mut(&id).expect("resolved").job;
                let before = j.avoid_hosts.len();
                j.avoid_hosts.retain(|h| host.is_some_and(|x| x != *h));
                let n = before - j.avoid_hosts.len();
                self.fail_streaks
                    .retain(|(jj, hh), _| *jj != id || host.is_some_and(|x| x != *hh));
                self.dirty.jobs.insert(id);
                Ok(format!("job {} may use {n} more hosts again", j.name))
            }
        }
    }

    fn put(&mut self, r: Record) {
        self.structure_event(r.kind(), &r.key());
        self.mirror.stale();
        self.structure.put(r.clone());
        self.dirty.structure.push(Change::Put(r));
    }

    fn remove(&mut self, kind: &'static str, key: &str) {
        self.structure_event(kind, key);
        self.mirror.stale();
        let s = &mut self.structure;
        match kind {
            "facility" => drop(s.facilities.remove(key)),
            "allocation" => drop(s.allocations.remove(key)),
            "show" => drop(s.shows.remove(key)),
            "subscription" => s.subs.retain(|(sh, al), _| format!("{sh}@{al}") != key),
            "limit" => drop(s.limits.remove(key)),
            "service" => s
                .services
                .retain(|_, v| Record::Service(v.clone()).key() != key),
            _ => unreachable!("a kind named in this file"),
        }
        self.dirty.structure.push(Change::Remove {
            kind,
            key: key.to_owned(),
        });
    }

    /// `limit.changed` or `show.changed` for a change to that record.
    fn structure_event(&mut self, kind: &str, key: &str) {
        match kind {
            "limit" => self.emit(EventKind::LimitChanged, About::default().detail(key)),
            "show" => {
                let about = About {
                    show: Some(key.to_owned()),
                    ..About::default()
                };
                self.emit(EventKind::ShowChanged, about)
            }
            _ => {}
        }
    }

    fn need_facility(&self, name: &str) -> Result<()> {
        match self.structure.facilities.contains_key(name) {
            true => Ok(()),
            false => Err(Error::NotFound(format!(
                "no facility {name:?}; create it with `kiln facility create {name}`"
            ))),
        }
    }

    fn need_allocation(&self, name: &str) -> Result<()> {
        match self.structure.allocations.contains_key(name) {
            true => Ok(()),
            false => Err(Error::NotFound(format!(
                "no allocation {name:?}; `kiln allocs` lists them, `kiln alloc create {name}` makes it"
            ))),
        }
    }

    fn need_show(&self, name: &str) -> Result<()> {
        match self.structure.shows.contains_key(name) {
            true => Ok(()),
            false => Err(Error::NotFound(format!(
                "no show {name:?}; `kiln shows` lists them, `kiln show create {name}` makes it"
            ))),
        }
    }

    pub(super) fn need_limit(&self, name: &str) -> Result<()> {
        match self.structure.limits.contains_key(name) {
            true => Ok(()),
            false => Err(Error::NotFound(format!(
                "no limit {name:?}; create it with `kiln limit set {name} --max N`"
            ))),
        }
    }

    /// Finds a host by name or id.
    pub fn resolve_host(&self, key: &str) -> Result<HostId> {
        self.host_by_name
            .get(key)
            .copied()
            .or_else(|| {
                key.parse::<i64>()
                    .ok()
                    .map(HostId)
                    .filter(|id| self.hosts.contains_key(id))
            })
            .ok_or_else(|| {
                Error::NotFound(format!("no host {key:?}: `kiln hosts` lists the hosts"))
            })
    }

    pub(super) fn set_repair(&mut self, id: HostId, on: bool, _now: Millis) {
        let h = self.hosts.get_mut(&id).expect("resolved");
        h.host.state = match (on, h.session.is_some()) {
            (true, _) => HostState::Repair,
            (false, true) => HostState::Up,
            (false, false) => HostState::Down,
        };
        if !on {
            h.failed_jobs.clear();
        }
        self.dirty.hosts.insert(id);
    }

    /// Creates what a fresh farm needs: the default facility, its default
    /// allocation, and puts hosts without an allocation in it.
    pub(super) fn ensure_defaults(&mut self) {
        let (facility, _) = Allocation::split_name(DEFAULT_ALLOCATION).expect("valid");
        if !self.structure.facilities.contains_key(facility) {
            self.put(Record::Facility(Facility {
                name: facility.to_owned(),
            }));
        }
        if !self.structure.allocations.contains_key(DEFAULT_ALLOCATION) {
            self.put(Record::Allocation(Allocation {
                name: DEFAULT_ALLOCATION.to_owned(),
                facility: facility.to_owned(),
                tags: Vec::new(),
            }));
        }
    }

    /// The allocation a newly seen host joins: the first by name whose tag
    /// rule matches the host's tags, else the default.
    pub(super) fn allocation_for(&self, tags: &[String]) -> String {
        self.structure
            .allocations
            .values()
            .find(|a| a.tags.iter().any(|t| tags.contains(t)))
            .map_or_else(|| DEFAULT_ALLOCATION.to_owned(), |a| a.name.clone())
    }

    /// The show a job is submitted to, created on first use with a
    /// subscription to each allocation of the job's facility: size 0 and no
    /// burst cap, so a fresh farm just works and a wrangler tunes it later.
    pub(super) fn show_for_submit(&mut self, show: &str, facility: &str) -> Result<Show> {
        if let Some(s) = self.structure.shows.get(show) {
            if !s.enabled {
                return Err(Error::spec(
                    "show",
                    format!("show {show} is disabled; a wrangler can enable it with `kiln show set {show} --enable`"),
                ));
            }
            return Ok(s.clone());
        }
        let new = Show::new(show);
        self.put(Record::Show(new.clone()));
        let allocs: Vec<String> = self
            .structure
            .allocations
            .values()
            .filter(|a| a.facility == facility)
            .map(|a| a.name.clone())
            .collect();
        for a in allocs {
            self.put(Record::Subscription(Subscription {
                show: show.to_owned(),
                allocation: a,
                size: 0,
                burst: UNLIMITED,
            }));
        }
        Ok(new)
    }
}
