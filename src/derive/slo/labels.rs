//! Label values with a cap, like the RED metrics' series cap: the first `cap` distinct values
//! get an id of their own; the rest share a reserved `other` id. A value not seen for a while
//! (in event time) is dropped by [`LabelTable::expire`], which frees its place under the cap.

use std::collections::HashMap;
use std::sync::Arc;

/// The overflow value's id (`other`), in every table.
pub(crate) const OTHER: u32 = 0;
/// Causes: a bad event for which nothing said why.
pub(crate) const CAUSE_UNKNOWN: u32 = 1;
/// Causes: the cause of good events in `tracejoin_slo_events_total`.
pub(crate) const CAUSE_NONE: u32 = 2;

/// Reserved operation names, by id.
pub(crate) const OP_RESERVED: &[&str] = &["other"];
/// Reserved cause names, by id.
pub(crate) const CAUSE_RESERVED: &[&str] = &["other", "unknown", "none"];

#[derive(Debug)]
pub(crate) struct LabelTable {
    names: Vec<Option<Arc<str>>>,
    last_seen: Vec<i64>,
    index: HashMap<Arc<str>, u32>,
    free: Vec<u32>,
    reserved: usize,
    cap: usize,
    /// Values folded into the overflow id since start.
    pub(crate) overflowed: u64,
}

impl LabelTable {
    /// `reserved` names take ids `0..reserved.len()` (id 0 is the overflow value) and never
    /// expire; `cap` more values may have their own id.
    pub(crate) fn new(reserved: &[&str], cap: usize) -> Self {
        let mut t = LabelTable {
            names: Vec::new(),
            last_seen: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
            reserved: reserved.len(),
            cap,
            overflowed: 0,
        };
        for r in reserved {
            let name: Arc<str> = Arc::from(*r);
            t.index.insert(name.clone(), t.names.len() as u32);
            t.names.push(Some(name));
            t.last_seen.push(i64::MAX);
        }
        t
    }

    /// The id of `name`, inserting it (or folding it into id 0 past the cap); marks it seen at
    /// `now`.
    pub(crate) fn id(&mut self, name: &str, now: i64) -> u32 {
        if let Some(&id) = self.index.get(name) {
            let seen = &mut self.last_seen[id as usize];
            *seen = (*seen).max(now);
            return id;
        }
        if self.index.len() - self.reserved >= self.cap {
            self.overflowed += 1;
            return OTHER;
        }
        let name: Arc<str> = Arc::from(name);
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = Some(name.clone());
                self.last_seen[id as usize] = now;
                id
            }
            None => {
                self.names.push(Some(name.clone()));
                self.last_seen.push(now);
                (self.names.len() - 1) as u32
            }
        };
        self.index.insert(name, id);
        id
    }

    /// Marks `id` seen at `now` (no-op for an id not held).
    pub(crate) fn touch(&mut self, id: u32, now: i64) {
        if let Some(seen) = self.last_seen.get_mut(id as usize) {
            *seen = (*seen).max(now);
        }
    }

    /// The name of `id` (`other` for an id no longer held).
    pub(crate) fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .and_then(|n| n.as_deref())
            .unwrap_or("other")
    }

    /// Drops every non-reserved value last seen before `before`; returns their ids.
    pub(crate) fn expire(&mut self, before: i64) -> Vec<u32> {
        let mut gone = Vec::new();
        for id in self.reserved..self.names.len() {
            if self.names[id].is_some() && self.last_seen[id] < before {
                if let Some(name) = self.names[id].take() {
                    self.index.remove(&name);
                }
                self.free.push(id as u32);
                gone.push(id as u32);
            }
        }
        gone
    }

    /// Non-reserved values held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len() - self.reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_folds_into_other_and_expiry_frees_room() {
        let mut t = LabelTable::new(CAUSE_RESERVED, 2);
        let a = t.id("a", 10);
        let b = t.id("b", 20);
        assert!(a >= 3 && b >= 3 && a != b);
        assert_eq!(t.id("c", 30), OTHER);
        assert_eq!(t.overflowed, 1);
        assert_eq!(t.id("a", 40), a, "a known value keeps its id at the cap");
        assert_eq!(t.id("unknown", 40), CAUSE_UNKNOWN);
        assert_eq!(t.len(), 2);
        assert_eq!(t.expire(30), vec![b]);
        assert_eq!(t.name(b), "other");
        let c = t.id("c", 50);
        assert_eq!(c, b, "the freed id is reused");
        assert_eq!(t.name(c), "c");
        assert_eq!(
            t.expire(i64::MAX - 1).len(),
            2,
            "reserved values never expire"
        );
        assert_eq!(t.name(CAUSE_NONE), "none");
    }
}
