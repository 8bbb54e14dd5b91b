//! Every distinct label value, stored once and counted by the series that use it.

use std::collections::HashMap;
use std::sync::Arc;

/// Label values as small numbers; a value is forgotten with its last reference.
#[derive(Default)]
pub(super) struct Symbols {
    pub(super) ids: HashMap<Arc<str>, u32>,
    /// Indexed by symbol: the value and how many series slots refer to it.
    values: Vec<(Arc<str>, u32)>,
    free: Vec<u32>,
}

impl Symbols {
    pub(super) fn find(&self, value: &str) -> Option<u32> {
        self.ids.get(value).copied()
    }

    /// The symbol of `value`, with one more reference.
    pub(super) fn acquire(&mut self, value: &str) -> u32 {
        if let Some(id) = self.find(value) {
            self.values[id as usize].1 += 1;
            return id;
        }
        let value: Arc<str> = value.into();
        let id = match self.free.pop() {
            Some(id) => {
                self.values[id as usize] = (value.clone(), 1);
                id
            }
            None => {
                self.values.push((value.clone(), 1));
                u32::try_from(self.values.len() - 1).expect("fewer than 2^32 label values")
            }
        };
        self.ids.insert(value, id);
        id
    }

    /// Drop one reference; the value is forgotten with its last one.
    pub(super) fn release(&mut self, id: u32) {
        let slot = &mut self.values[id as usize];
        slot.1 -= 1;
        if slot.1 == 0 {
            let value = std::mem::replace(&mut slot.0, Arc::from(""));
            self.ids.remove(&value);
            self.free.push(id);
        }
    }

    pub(super) fn get(&self, id: u32) -> &str {
        &self.values[id as usize].0
    }

    /// The value of `id`, shared: it stays readable after the lock is let go.
    pub(super) fn shared(&self, id: u32) -> Arc<str> {
        self.values[id as usize].0.clone()
    }
}
