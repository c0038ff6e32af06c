//! Maps that remember which entries were handed out for change, so the
//! scheduler's mirror of the farm (see `mirror.rs`) re-reads only those
//! rather than the whole farm on every pass.
//!
//! Reading goes through `Deref` to the map itself; every way to change an
//! entry notes its key, except [`Tracked::quiet_mut`], whose callers keep
//! the mirror true themselves (the per-frame paths, where re-reading the
//! entry at the next pass would cost more than the change).

use std::collections::BTreeMap;
use std::hash::Hash;
use std::ops::Deref;

/// The few map operations [`Tracked`] wraps.
pub(super) trait Map<K, V> {
    fn entry_mut(&mut self, k: &K) -> Option<&mut V>;
    fn put(&mut self, k: K, v: V) -> Option<V>;
    fn take(&mut self, k: &K) -> Option<V>;
}

impl<K: Ord, V> Map<K, V> for BTreeMap<K, V> {
    fn entry_mut(&mut self, k: &K) -> Option<&mut V> {
        self.get_mut(k)
    }
    fn put(&mut self, k: K, v: V) -> Option<V> {
        self.insert(k, v)
    }
    fn take(&mut self, k: &K) -> Option<V> {
        self.remove(k)
    }
}

impl<K: Hash + Eq, V> Map<K, V> for rustc_hash::FxHashMap<K, V> {
    fn entry_mut(&mut self, k: &K) -> Option<&mut V> {
        self.get_mut(k)
    }
    fn put(&mut self, k: K, v: V) -> Option<V> {
        self.insert(k, v)
    }
    fn take(&mut self, k: &K) -> Option<V> {
        self.remove(k)
    }
}

/// Past this many noted keys, everything counts as changed.
const MAX_TOUCHED: usize = 1 << 20;

/// Keys changed since the last [`Tracked::take_touched`].
pub(super) enum Touched<K> {
    /// These (possibly repeated) keys.
    Some(Vec<K>),
    /// So many that re-reading everything is cheaper.
    All,
}

#[derive(Debug)]
pub(super) struct Tracked<M, K> {
    map: M,
    touched: Vec<K>,
    all: bool,
}

impl<M: Default, K> Default for Tracked<M, K> {
    fn default() -> Self {
        Tracked {
            map: M::default(),
            touched: Vec::new(),
            all: true,
        }
    }
}

impl<M, K> Deref for Tracked<M, K> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.map
    }
}

impl<M, K: Copy> Tracked<M, K> {
    pub fn get_mut<V>(&mut self, k: &K) -> Option<&mut V>
    where
        M: Map<K, V>,
    {
        self.touch(*k);
        self.map.entry_mut(k)
    }

    /// Changes an entry without noting it: the caller updates the mirror.
    pub fn quiet_mut<V>(&mut self, k: &K) -> Option<&mut V>
    where
        M: Map<K, V>,
    {
        self.map.entry_mut(k)
    }

    pub fn insert<V>(&mut self, k: K, v: V) -> Option<V>
    where
        M: Map<K, V>,
    {
        self.touch(k);
        self.map.put(k, v)
    }

    /// Removes an entry. Not noted: the caller makes the mirror read
    /// everything again ([`super::mirror::Mirror::stale`]).
    pub fn remove<V>(&mut self, k: &K) -> Option<V>
    where
        M: Map<K, V>,
    {
        self.map.take(k)
    }

    /// Notes a key as changed without changing anything. A farm that is
    /// never planned (a store tool, a test) must not grow the list without
    /// bound: past [`MAX_TOUCHED`] keys it becomes [`Touched::All`].
    pub fn touch(&mut self, k: K) {
        if self.all {
            return;
        }
        if self.touched.len() == MAX_TOUCHED {
            self.touched = Vec::new();
            self.all = true;
        } else {
            self.touched.push(k);
        }
    }

    /// The keys noted since the last call.
    pub fn take_touched(&mut self) -> Touched<K> {
        let all = std::mem::replace(&mut self.all, false);
        let keys = std::mem::take(&mut self.touched);
        if all {
            Touched::All
        } else {
            Touched::Some(keys)
        }
    }
}
