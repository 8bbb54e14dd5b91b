//! The registry: every metric family of the process, sorted by name, and the
//! generation counter that tells the exposition when to re-encode.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::family::{Family, FamilyOps, Kind, CHUNK};
use super::prefilled::Prefilled;
use super::symbols::Symbols;

/// The metric families of the exporter. Cheap to clone; clones share the families.
#[derive(Clone, Default)]
pub struct Registry {
    families: Arc<RwLock<Vec<Arc<dyn FamilyOps>>>>,
    pub(super) symbols: Arc<Mutex<Symbols>>,
    generation: Arc<AtomicU64>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Counts changes: it moves whenever any series is written or removed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Note a change made outside the families (forces the next encode).
    pub(super) fn touch(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn register(
        &self,
        kind: Kind,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Arc<dyn FamilyOps> {
        self.add(Arc::new(Family::new(
            kind,
            name,
            help,
            labels,
            self.symbols.clone(),
            self.generation.clone(),
        )))
    }

    /// Register a counter family whose last label takes the values `fixed`, each of
    /// them exported at 0 until counted for every set of the other labels created.
    pub(super) fn register_prefilled(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        fixed: &[&'static str],
    ) -> Arc<dyn FamilyOps> {
        self.add(Arc::new(Prefilled::new(
            name,
            help,
            labels,
            fixed,
            self.symbols.clone(),
            self.generation.clone(),
        )))
    }

    fn add(&self, family: Arc<dyn FamilyOps>) -> Arc<dyn FamilyOps> {
        let name = family.name().to_string();
        let name = name.as_str();
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        match families.binary_search_by(|f| f.name().cmp(name)) {
            Ok(_) => panic!("metric family {name} is registered twice"),
            Err(at) => families.insert(at, family.clone()),
        }
        family
    }

    /// Append every non-empty family, sorted by name, in the text format (0.0.4).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        for family in families.iter() {
            family.encode(out, &mut |_| {});
        }
    }

    /// Write the same text as [`Registry::encode`] to `sink` in pieces of about 64 kB,
    /// never holding the whole text.
    pub fn write_to(&self, sink: &mut impl Write) -> io::Result<()> {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        let mut result = Ok(());
        let mut flush = |buf: &mut Vec<u8>| {
            if result.is_ok() {
                result = sink.write_all(buf);
            }
            buf.clear();
        };
        for family in families.iter() {
            family.encode(&mut buf, &mut flush);
        }
        flush(&mut buf);
        result
    }
}
