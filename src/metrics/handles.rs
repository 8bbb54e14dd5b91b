//! The handles collectors write through: labelled gauge and counter families, single
//! series, and [`GaugeFamily`], which replaces the complete set of an account's series.

use std::sync::Arc;

use super::family::{FamilyOps, Kind};
use super::{Registry, CACHED_HELP_SUFFIX};

/// A labelled gauge family (the `prometheus` crate's `GaugeVec`, minus the per-series
/// overhead).
#[derive(Clone)]
pub struct GaugeVec(Arc<dyn FamilyOps>);

/// A labelled counter family.
#[derive(Clone)]
pub struct CounterVec(Arc<dyn FamilyOps>);

/// One gauge series.
pub struct Gauge {
    family: Arc<dyn FamilyOps>,
    values: Box<[Box<str>]>,
}

/// One counter series.
pub struct Counter {
    family: Arc<dyn FamilyOps>,
    values: Box<[Box<str>]>,
}

fn owned(values: &[&str]) -> Box<[Box<str>]> {
    values.iter().map(|v| Box::from(*v)).collect()
}

fn borrowed(values: &[Box<str>]) -> Vec<&str> {
    values.iter().map(AsRef::as_ref).collect()
}

impl GaugeVec {
    /// Register a gauge family `name` with labels `labels` (any number) into `registry`.
    ///
    /// # Panics
    /// When a family of that name is already registered.
    pub fn new(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Self {
        GaugeVec(registry.register(Kind::Gauge, name, help, labels))
    }

    /// The series with these label values (in declared order), created at 0 if absent.
    pub fn with_label_values(&self, values: &[&str]) -> Gauge {
        self.0.update(values, &mut |_| {});
        Gauge {
            family: self.0.clone(),
            values: owned(values),
        }
    }

    /// Remove one series; false when it did not exist.
    pub fn remove_label_values(&self, values: &[&str]) -> bool {
        self.0.remove(values)
    }

    /// Remove every series.
    pub fn reset(&self) {
        self.0.reset();
    }
}

impl Gauge {
    /// Set the value.
    pub fn set(&self, value: f64) {
        self.family
            .update(&borrowed(&self.values), &mut |v| *v = value);
    }

    /// The current value (0 when the series was removed meanwhile).
    pub fn get(&self) -> f64 {
        self.family.get(&borrowed(&self.values))
    }
}

impl CounterVec {
    /// Register a counter family `name` with labels `labels` (any number) into `registry`.
    ///
    /// # Panics
    /// When a family of that name is already registered.
    pub fn new(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Self {
        CounterVec(registry.register(Kind::Counter, name, help, labels))
    }

    /// Register a counter family whose last label takes the values `fixed`: creating
    /// a series (at 0, with [`CounterVec::with_label_values`]) creates it for every one
    /// of them, and they are stored only once counted. Removing one removes them all.
    ///
    /// # Panics
    /// When a family of that name is already registered, or the last label does not
    /// sort after the others.
    pub fn prefilled(
        registry: &Registry,
        name: &str,
        help: &str,
        labels: &[&str],
        fixed: &[&'static str],
    ) -> Self {
        CounterVec(registry.register_prefilled(name, help, labels, fixed))
    }

    /// The series with these label values (in declared order), created at 0 if absent.
    pub fn with_label_values(&self, values: &[&str]) -> Counter {
        self.0.update(values, &mut |_| {});
        Counter {
            family: self.0.clone(),
            values: owned(values),
        }
    }

    /// Remove one series; false when it did not exist.
    pub fn remove_label_values(&self, values: &[&str]) -> bool {
        self.0.remove(values)
    }
}

impl Counter {
    /// Add one.
    pub fn inc(&self) {
        self.family
            .update(&borrowed(&self.values), &mut |v| *v += 1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.family.get(&borrowed(&self.values))
    }
}

/// A gauge family whose first label is `account`, able to replace the complete set of
/// one account's series so that vanished label sets disappear. A clone is another
/// handle on the same family.
#[derive(Clone)]
pub struct GaugeFamily {
    family: Arc<dyn FamilyOps>,
    /// Position of `account` in the key.
    account_at: usize,
}

impl GaugeFamily {
    /// Register a family `name` with labels `account` + `extra_labels`. Its HELP text
    /// says the value is refreshed on an interval.
    pub fn new(registry: &Registry, name: &str, help: &str, extra_labels: &[&str]) -> Self {
        let mut labels = vec!["account"];
        labels.extend_from_slice(extra_labels);
        let help = format!("{help}{CACHED_HELP_SUFFIX}");
        let family = registry.register(Kind::Gauge, name, &help, &labels);
        let account_at = family
            .declared()
            .iter()
            .position(|&i| i == 0)
            .expect("account is a label");
        GaugeFamily { family, account_at }
    }

    /// Make `series` the complete set of this account's series: set each, remove
    /// label sets written before but absent now.
    pub fn replace<I>(&self, account: &str, series: I)
    where
        I: IntoIterator<Item = (Vec<String>, f64)>,
    {
        self.family
            .replace(self.account_at, account, &mut series.into_iter());
    }

    /// Set the account's single series (a family without extra labels).
    pub fn set(&self, account: &str, value: f64) {
        self.replace(account, [(Vec::new(), value)]);
    }

    /// Set the account's single series, or remove it when `value` is `None`.
    pub fn set_opt(&self, account: &str, value: Option<f64>) {
        match value {
            Some(v) => self.set(account, v),
            None => self.clear(account),
        }
    }

    /// Remove every series of this account.
    pub fn clear(&self, account: &str) {
        self.replace(account, std::iter::empty());
    }

    /// The number of series of `account` in this family (what the status page shows
    /// per collector; read once per collection attempt, never on the scrape path).
    pub fn count(&self, account: &str) -> usize {
        self.family.count(self.account_at, account)
    }
}
