//! The one list of vendors. A vendor is a folder here whose `mod.rs` describes it as
//! a [`Provider`]: its configuration section, metric families and collectors. Adding a
//! vendor is adding its folder and one line in [`all`]; nothing else in the core
//! names a vendor.

pub mod acedata;
pub mod yeastar;

use crate::provider::Provider;

/// Every vendor this build knows, in the order of the configuration sections.
pub fn all() -> Vec<&'static dyn Provider> {
    vec![&acedata::PROVIDER, &yeastar::PROVIDER]
}

#[cfg(test)]
mod fingerprint_tests;
#[cfg(test)]
mod tests;
