//! A map keyed by a few strings joined with NULs (which Kubernetes names and label values
//! cannot hold), looked up through a reused buffer: a hit allocates nothing, where a map keyed
//! by a tuple of owned strings would build and hash the tuple on every lookup.

use std::collections::HashMap;

#[derive(Debug)]
pub struct JoinedKeyMap<V> {
    map: HashMap<String, V>,
    key: String,
}

impl<V> Default for JoinedKeyMap<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            key: String::new(),
        }
    }
}

impl<V> JoinedKeyMap<V> {
    fn join<'a>(&mut self, parts: impl IntoIterator<Item = &'a str>) {
        self.key.clear();
        for part in parts {
            self.key.push_str(part);
            self.key.push('\0');
        }
    }

    /// The value under `parts`, made by `make` the first time.
    pub fn get_or_insert_with<'a>(
        &mut self,
        parts: impl IntoIterator<Item = &'a str>,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        self.join(parts);
        // Two lookups instead of `entry`, which would need an owned key on every hit.
        if !self.map.contains_key(self.key.as_str()) {
            self.map.insert(self.key.clone(), make());
        }
        self.map
            .get_mut(self.key.as_str())
            .expect("inserted above if it was missing")
    }

    /// The value under `parts`, if there is one.
    pub fn get_mut<'a>(&mut self, parts: impl IntoIterator<Item = &'a str>) -> Option<&mut V> {
        self.join(parts);
        self.map.get_mut(self.key.as_str())
    }

    pub fn retain(&mut self, keep: impl FnMut(&String, &mut V) -> bool) {
        self.map.retain(keep);
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_kept_apart() {
        let mut m = JoinedKeyMap::default();
        *m.get_or_insert_with(["ab", "c"], || 0) += 1;
        *m.get_or_insert_with(["a", "bc"], || 0) += 10;
        *m.get_or_insert_with(["ab", "c"], || 0) += 1;
        assert_eq!(m.len(), 2);
        assert_eq!(m.get_mut(["ab", "c"]).copied(), Some(2));
        assert_eq!(m.get_mut(["a", "bc"]).copied(), Some(10));
        assert!(m.get_mut(["abc"]).is_none());
    }
}
