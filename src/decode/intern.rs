//! A bounded string interner for service, span and attribute names.
//!
//! Names repeat across millions of spans; interning turns each into one `Arc<str>` shared by every
//! summary that mentions it. The table is bounded: a high-cardinality name (a span named after a
//! URL with ids in it) must not grow it without end, so past the cap new names are allocated
//! per use and not remembered.

use std::collections::HashSet;
use std::sync::Arc;

/// See the module docs.
#[derive(Debug)]
pub struct Interner {
    names: HashSet<Arc<str>>,
    cap: usize,
}

impl Interner {
    /// An interner that remembers at most `cap` names.
    pub fn new(cap: usize) -> Self {
        Interner {
            names: HashSet::new(),
            cap,
        }
    }

    /// The shared copy of `s`.
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.names.get(s) {
            return found.clone();
        }
        let arc: Arc<str> = Arc::from(s);
        if self.names.len() < self.cap {
            self.names.insert(arc.clone());
        }
        arc
    }

    /// How many names are remembered.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is remembered.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_allocation_and_cap_holds() {
        let mut i = Interner::new(2);
        let a = i.intern("checkout");
        let b = i.intern("checkout");
        assert!(Arc::ptr_eq(&a, &b));
        i.intern("payments");
        let c1 = i.intern("third");
        let c2 = i.intern("third");
        assert_eq!(i.len(), 2);
        assert!(!Arc::ptr_eq(&c1, &c2));
        assert_eq!(&*c1, "third");
    }
}
