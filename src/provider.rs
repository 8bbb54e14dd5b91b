//! The seam between the core and a vendor. A vendor is one [`Provider`]: its
//! configuration section, its accounts, its metric families and its collectors. The
//! core (configuration, app, scheduler) sees vendors only through this trait and the
//! list in [`crate::providers`]; nothing outside a vendor's folder names a vendor. The
//! configuration ([`crate::config`]) is built on top of this seam, not under it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::collector::{Collector, Scheduled};
use crate::config::fields::Fields;
use crate::fingerprint::Fingerprint;
use crate::metrics::Registry;
use crate::timing::Timing;
use crate::upstream::Upstream;

/// One vendor, as the core sees it.
pub trait Provider: fmt::Debug + Send + Sync + 'static {
    /// The configuration section and the `provider` label, e.g. `acedata`.
    fn name(&self) -> &'static str;
    /// The vendor's name for people, e.g. `Ace Data Cloud`.
    fn title(&self) -> &'static str;
    /// Read one account mapping of this vendor's section. Problems go to `fields`
    /// (with their paths); `None` when the account is unusable.
    fn parse_account(&self, fields: &mut Fields<'_>, defaults: Timing) -> Option<Arc<dyn Account>>;
    /// Register this vendor's metric families; called once per process. What it
    /// returns is handed back to [`Account::collectors`].
    fn register(&self, registry: &Registry) -> Families;
}

/// A vendor's metric families, shared by all its accounts. Only the vendor that
/// registered them knows their type (see [`families`]).
pub type Families = Arc<dyn Any + Send + Sync>;

/// The families a vendor registered, as the type it registered them as.
///
/// # Panics
/// When `families` were registered by another vendor: a wiring mistake, not input.
pub fn families<T: Send + Sync + 'static>(families: &Families) -> Arc<T> {
    families
        .clone()
        .downcast::<T>()
        .unwrap_or_else(|_| panic!("metric families of another provider"))
}

/// One configured account of a vendor.
pub trait Account: fmt::Debug + Send + Sync + 'static {
    /// The `account` label: the configured name, unique within the vendor.
    fn name(&self) -> &str;
    /// The polling cadence.
    fn timing(&self) -> Timing;
    /// The cadence of one of the account's collectors (by its `collector` label), for
    /// collectors that poll on a cadence of their own; the account's by default.
    fn timing_of(&self, _collector: &str) -> Timing {
        self.timing()
    }
    /// The configured `low_balance_threshold`.
    fn low_balance_threshold(&self) -> Option<f64>;
    /// The account's collectors, writing into `families` (what this vendor's
    /// [`Provider::register`] returned).
    fn collectors(&self, families: &Families, upstream: &Upstream) -> Vec<Box<dyn Collector>>;
    /// The fingerprint of the account's whole configuration: every key, each secret
    /// by its source (the same inline value, file path or variable name; see
    /// [`crate::fingerprint`]). A reload keeps the collectors, and all their state, of
    /// an account whose fingerprint is unchanged; an account without one (a vendor
    /// that cannot tell) restarts on every reload.
    fn fingerprint(&self) -> Option<Fingerprint> {
        None
    }
    /// The concrete account, for a vendor's own code and tests.
    fn as_any(&self) -> &dyn Any;
}

/// Every vendor's metric families, registered once per process.
pub struct ProviderMetrics {
    families: Vec<(&'static str, Families)>,
}

impl ProviderMetrics {
    /// Register the families of every vendor in `providers` into `registry`.
    pub fn register(registry: &Registry, providers: &[&'static dyn Provider]) -> Self {
        ProviderMetrics {
            families: providers
                .iter()
                .map(|p| (p.name(), p.register(registry)))
                .collect(),
        }
    }

    fn of(&self, provider: &str) -> &Families {
        self.families
            .iter()
            .find(|(name, _)| *name == provider)
            .map(|(_, f)| f)
            .unwrap_or_else(|| panic!("provider {provider} was not registered"))
    }
}

/// An account's low-balance threshold, for `balance_exporter_low_balance_threshold`.
pub struct Threshold {
    pub provider: &'static str,
    pub account: String,
    pub value: f64,
}

/// The collectors of one account of `provider`, with the account's cadence.
pub fn account_collectors(
    provider: &'static dyn Provider,
    account: &dyn Account,
    metrics: &ProviderMetrics,
    upstream: &Upstream,
) -> Vec<Scheduled> {
    account
        .collectors(metrics.of(provider.name()), upstream)
        .into_iter()
        .map(|collector| Scheduled {
            timing: account.timing_of(collector.name()),
            collector,
            provider: provider.name(),
        })
        .collect()
}
