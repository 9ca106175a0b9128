//! [`ExpiringCache`]: the bounded, expiring map behind the resolvers' caches (verified JWTs,
//! webhook answers).
//!
//! It is only a cache: when it is full it first drops what has expired and, if it is still
//! full, empties itself before the insert. That keeps the worst case O(capacity) once per
//! `capacity` inserts and needs no ordering structure on the hit path, which is one shard
//! read lock and a clone. Keys are digests (SHA-256 of a credential), never credentials.

use std::hash::Hash;
use std::time::Instant;

use dashmap::DashMap;

/// A bounded map whose entries expire (see the [module docs](self)).
pub struct ExpiringCache<K, V> {
    map: DashMap<K, (V, Instant)>,
    capacity: usize,
}

impl<K: Eq + Hash, V> std::fmt::Debug for ExpiringCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpiringCache")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> ExpiringCache<K, V> {
    /// A cache of at most `capacity` entries; 0 never caches.
    pub fn new(capacity: usize) -> Self {
        ExpiringCache {
            map: DashMap::new(),
            capacity,
        }
    }

    /// The value under `key`, unless absent or expired (an expired entry is removed).
    pub fn get(&self, key: &K) -> Option<V> {
        let now = Instant::now();
        {
            let entry = self.map.get(key)?;
            if entry.1 > now {
                return Some(entry.0.clone());
            }
        }
        self.map.remove_if(key, |_, (_, until)| *until <= now);
        None
    }

    /// Keeps `value` under `key` until `until` (an instant already past stores nothing).
    pub fn insert(&self, key: K, value: V, until: Instant) {
        let now = Instant::now();
        if self.capacity == 0 || until <= now {
            return;
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.map.retain(|_, (_, t)| *t > now);
            if self.map.len() >= self.capacity {
                self.map.clear();
                metrics::counter!("gateway_resolver_cache_flushes_total").increment(1);
            }
        }
        self.map.insert(key, (value, until));
    }

    /// Keeps only the entries for which `keep` is true (a key left the JWKS: its tokens go).
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.map.retain(|k, (v, _)| keep(k, v));
    }

    /// How many entries are held (expired ones included until they are next touched).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn hits_until_expiry_then_misses() {
        let c = ExpiringCache::new(10);
        c.insert(1u8, "a", later(60_000));
        c.insert(2u8, "b", later(30));
        c.insert(3u8, "c", Instant::now());
        assert_eq!(c.get(&1), Some("a"));
        assert_eq!(c.get(&2), Some("b"));
        assert_eq!(c.get(&3), None, "an instant already past stores nothing");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&2), None);
        assert_eq!(c.len(), 1, "the expired entry was removed on the miss");
    }

    #[test]
    fn stays_within_capacity() {
        let c = ExpiringCache::new(3);
        for k in 0u32..3 {
            c.insert(k, k, later(60_000));
        }
        // Replacing a held key does not evict.
        c.insert(1, 10, later(60_000));
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&1), Some(10));
        c.insert(3, 3, later(60_000));
        assert!(c.len() <= 3);
        assert_eq!(c.get(&3), Some(3));
        for k in 0u32..1000 {
            c.insert(k, k, later(60_000));
            assert!(c.len() <= 3);
        }
    }

    #[test]
    fn expired_entries_go_first_when_full() {
        let c = ExpiringCache::new(2);
        c.insert(1u8, 1u8, later(20));
        c.insert(2u8, 2u8, later(60_000));
        std::thread::sleep(Duration::from_millis(30));
        c.insert(3u8, 3u8, later(60_000));
        assert_eq!(c.get(&2), Some(2), "the live entry survived");
        assert_eq!(c.get(&3), Some(3));
    }

    #[test]
    fn zero_capacity_never_caches_and_retain_filters() {
        let off = ExpiringCache::new(0);
        off.insert(1u8, 1u8, later(60_000));
        assert!(off.is_empty());
        let c = ExpiringCache::new(10);
        for k in 0u8..6 {
            c.insert(k, k % 2, later(60_000));
        }
        c.retain(|_, v| *v == 0);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&1), None);
        c.clear();
        assert!(c.is_empty());
    }
}
