//! Where a frame can go: the snapshot's hosts grouped by allocation and by
//! what they carry (tags, GPUs), each group ordered by free cores, so best
//! fit is a range query and not a scan of the farm.

use super::Snapshot;
use crate::model::{Centicores, Resources, TagReq};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;

/// Hosts of one allocation with the same tags and GPU-ness.
struct Class {
    alloc: u32,
    tags: Vec<String>,
    gpu: bool,
    /// The most of each resource any host of the class offers.
    max_total: Resources,
    /// (free cores, host) of hosts with any core free.
    hosts: BTreeSet<(Centicores, u32)>,
}

pub(super) struct Index {
    classes: Vec<Class>,
    /// Allocation → its classes.
    by_alloc: Vec<Vec<u32>>,
    class_of: Vec<u32>,
    /// Per allocation: hosts with any core free. At 0 nothing more can
    /// start there this pass.
    open: Vec<u32>,
    pub free: Vec<Resources>,
    pub total: Vec<Resources>,
}

/// Fitting hosts compared per class before choosing: enough to avoid
/// stranding memory, few enough to keep a placement cheap.
const CANDIDATES: usize = 4;

impl Index {
    pub fn new(snap: &Snapshot) -> Index {
        let mut classes: Vec<Class> = Vec::new();
        let mut by_alloc: Vec<Vec<u32>> = vec![Vec::new(); snap.allocations.len()];
        // Hosts come with their tags sorted (see HostSlot), so equal tag
        // sets compare equal without copying them.
        type Key<'s> = (u32, &'s [String], bool);
        let mut keys: HashMap<Key, u32> = HashMap::default();
        let mut class_of = Vec::with_capacity(snap.hosts.len());
        let mut open = vec![0; snap.allocations.len()];
        // Hosts of a class tend to come together: skip the hash then.
        let mut last: Option<(Key, u32)> = None;
        for (i, h) in snap.hosts.iter().enumerate() {
            let gpu = h.total.gpus > 0;
            let key = (h.alloc, &h.tags[..], gpu);
            let known = match last {
                Some((k, c)) if k == key => Some(c),
                _ => keys.get(&key).copied(),
            };
            let c = match known {
                Some(c) => c,
                None => {
                    let c = classes.len() as u32;
                    classes.push(Class {
                        alloc: h.alloc,
                        tags: h.tags.to_vec(),
                        gpu,
                        max_total: Resources::default(),
                        hosts: BTreeSet::new(),
                    });
                    if let Some(list) = by_alloc.get_mut(h.alloc as usize) {
                        list.push(c);
                    }
                    keys.insert(key, c);
                    c
                }
            };
            last = Some((key, c));
            class_of.push(c);
            let m = &mut classes[c as usize].max_total;
            let t = &h.total;
            m.cores = m.cores.max(t.cores);
            m.memory_kb = m.memory_kb.max(t.memory_kb);
            m.gpus = m.gpus.max(t.gpus);
            m.gpu_memory_kb = m.gpu_memory_kb.max(t.gpu_memory_kb);
            m.scratch_kb = m.scratch_kb.max(t.scratch_kb);
            if h.free.cores > 0 {
                classes[c as usize].hosts.insert((h.free.cores, i as u32));
                if let Some(n) = open.get_mut(h.alloc as usize) {
                    *n += 1;
                }
            }
        }
        Index {
            classes,
            by_alloc,
            class_of,
            open,
            free: snap.hosts.iter().map(|h| h.free).collect(),
            total: snap.hosts.iter().map(|h| h.total).collect(),
        }
    }

    /// The classes of `alloc` whose tags satisfy `tags`: those to try
    /// first, then those to fall back on. Work that needs no GPU tries
    /// hosts without GPUs first, so GPU hosts stay free for GPU work.
    pub fn classes_for(&self, alloc: u32, tags: &[TagReq], needs_gpu: bool) -> [Vec<u32>; 2] {
        let mut first = Vec::new();
        let mut then = Vec::new();
        for &c in self.alloc_classes(alloc) {
            if !self.class_tags_ok(c, tags) {
                continue;
            }
            if self.classes[c as usize].gpu && !needs_gpu {
                then.push(c);
            } else {
                first.push(c);
            }
        }
        [first, then]
    }

    /// Whether any host of `alloc` has a core free.
    pub fn open(&self, alloc: u32) -> bool {
        self.open.get(alloc as usize).is_some_and(|&n| n > 0)
    }

    /// The classes of `alloc` (all of them, tags not considered).
    pub fn alloc_classes(&self, alloc: u32) -> &[u32] {
        self.by_alloc.get(alloc as usize).map_or(&[], |v| v)
    }

    /// Whether class `c`'s tags satisfy `tags`.
    pub fn class_tags_ok(&self, c: u32, tags: &[TagReq]) -> bool {
        let class = &self.classes[c as usize];
        tags.iter().all(|t| t.satisfied_by(&class.tags))
    }

    /// Whether some host of class `c` might run `need` once idle (each
    /// resource checked against the class's largest).
    pub fn class_could_fit(&self, c: u32, need: &Resources) -> bool {
        need.fits_in(&self.classes[c as usize].max_total)
    }

    /// The most of each resource any host of class `c` offers.
    pub fn class_max(&self, c: u32) -> Resources {
        self.classes[c as usize].max_total
    }

    pub fn class_of(&self, host: u32) -> u32 {
        self.class_of[host as usize]
    }

    /// Whether `need` fits on host `h` now.
    pub fn fits(&self, h: u32, need: &Resources) -> bool {
        need.fits_in(&self.free[h as usize])
    }

    /// Whether host `h` is entirely idle.
    pub fn idle(&self, h: u32) -> bool {
        self.free[h as usize] == self.total[h as usize]
    }

    /// The best host among `classes` for `need`: the tightest fit on cores,
    /// and among a few of those the one that leaves cores and memory most
    /// in balance (least capacity stranded). `ok` vetoes hosts (avoided,
    /// reserved for another frame).
    pub fn best(&self, classes: &[u32], need: &Resources, ok: impl Fn(u32) -> bool) -> Option<u32> {
        let mut best: Option<(u64, Centicores, u32)> = None;
        for &c in classes {
            let mut found = 0;
            for &(free_cores, h) in self.classes[c as usize].hosts.range((need.cores, 0)..) {
                if !self.fits(h, need) || !ok(h) {
                    continue;
                }
                let score = (self.stranding(h, need), free_cores - need.cores, h);
                if best.is_none_or(|b| score < b) {
                    best = Some(score);
                }
                found += 1;
                if found == CANDIDATES {
                    break;
                }
            }
        }
        best.map(|b| b.2)
    }

    /// An entirely idle host among `classes` that offers at least `need`,
    /// largest first.
    pub fn whole(
        &self,
        classes: &[u32],
        need: &Resources,
        ok: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        classes
            .iter()
            .filter_map(|&c| {
                self.classes[c as usize]
                    .hosts
                    .iter()
                    .rev()
                    .find(|&&(_, h)| self.idle(h) && self.fits(h, need) && ok(h))
                    .map(|&(free, h)| (free, h))
            })
            .max_by_key(|&(free, h)| (free, std::cmp::Reverse(h)))
            .map(|(_, h)| h)
    }

    /// How unevenly a placement leaves the host's cores and memory, in
    /// millionths: 0 when both are left in the same proportion.
    fn stranding(&self, h: u32, need: &Resources) -> u64 {
        let (f, t) = (&self.free[h as usize], &self.total[h as usize]);
        let cores = (f.cores - need.cores) as f64 / t.cores.max(1) as f64;
        let mem = (f.memory_kb - need.memory_kb) as f64 / t.memory_kb.max(1) as f64;
        ((cores - mem).abs() * 1e6) as u64
    }

    /// Takes `grant` from host `h`, keeping its class ordered.
    pub fn take(&mut self, h: u32, grant: &Resources) {
        let c = self.class_of[h as usize] as usize;
        let before = self.free[h as usize].cores;
        self.free[h as usize].sub(grant);
        let after = self.free[h as usize].cores;
        if before == after {
            return;
        }
        let set = &mut self.classes[c].hosts;
        set.remove(&(before, h));
        if after > 0 {
            set.insert((after, h));
        } else {
            let alloc = self.classes[c].alloc as usize;
            if let Some(n) = self.open.get_mut(alloc) {
                *n -= 1;
            }
        }
    }
}
