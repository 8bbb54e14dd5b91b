//! A vendor defined outside the crate, through the provider seam alone: accounts with
//! `name`, `base_url`, `low_balance_threshold` and the timing keys, each polled by one
//! collector that writes one gauge with what the vendor's `poll` returns.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use balance_exporter::collector::{CollectError, Collector};
use balance_exporter::config::fields::Fields;
use balance_exporter::metrics::{GaugeFamily, Registry};
use balance_exporter::provider::{families, Account, Families, Provider};
use balance_exporter::providers;
use balance_exporter::timing::Timing;
use balance_exporter::upstream::Upstream;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::time::Instant;

/// One collection attempt: the gauge's new value, or why there is none.
pub type Poll = for<'a> fn(&'a Attempt) -> BoxFuture<'a, Result<f64, CollectError>>;

/// A vendor of one gauge; a `static` of it is a [`Provider`] to add to the list
/// ([`with`]).
#[derive(Debug)]
pub struct Vendor {
    /// The configuration section and the `provider` label.
    pub name: &'static str,
    pub title: &'static str,
    /// The gauge, and the `collector` label of the collector that writes it.
    pub gauge: &'static str,
    pub help: &'static str,
    pub poll: Poll,
}

/// What `poll` knows of the attempt.
#[derive(Clone)]
pub struct Attempt {
    /// 0 for the first; counted before `poll` runs, so a panic counts too.
    pub number: usize,
    pub base_url: String,
    pub timeout: Duration,
    pub upstream: Upstream,
    pub deadline: Instant,
}

/// The exporter's vendors and `vendor`.
pub fn with(vendor: &'static Vendor) -> Vec<&'static dyn Provider> {
    let mut list = providers::all();
    list.push(vendor);
    list
}

#[derive(Debug)]
struct VendorAccount {
    gauge: &'static str,
    poll: Poll,
    name: String,
    base_url: String,
    timing: Timing,
    threshold: Option<f64>,
}

struct VendorCollector {
    gauge: &'static str,
    poll: Poll,
    account: String,
    attempt: Attempt,
    level: Arc<GaugeFamily>,
}

impl Provider for Vendor {
    fn name(&self) -> &'static str {
        self.name
    }
    fn title(&self) -> &'static str {
        self.title
    }
    fn parse_account(&self, f: &mut Fields<'_>, defaults: Timing) -> Option<Arc<dyn Account>> {
        let name = f.string("name", true);
        let base_url = f.url("base_url", "http://127.0.0.1:9");
        let timing = f.timing(defaults);
        let threshold = f.finite("low_balance_threshold");
        Some(Arc::new(VendorAccount {
            gauge: self.gauge,
            poll: self.poll,
            name: name?,
            base_url,
            timing,
            threshold,
        }))
    }
    fn register(&self, r: &Registry) -> Families {
        Arc::new(GaugeFamily::new(r, self.gauge, self.help, &[]))
    }
}

impl Account for VendorAccount {
    fn name(&self) -> &str {
        &self.name
    }
    fn timing(&self) -> Timing {
        self.timing
    }
    fn low_balance_threshold(&self) -> Option<f64> {
        self.threshold
    }
    fn collectors(&self, f: &Families, upstream: &Upstream) -> Vec<Box<dyn Collector>> {
        vec![Box::new(VendorCollector {
            gauge: self.gauge,
            poll: self.poll,
            account: self.name.clone(),
            attempt: Attempt {
                number: 0,
                base_url: self.base_url.clone(),
                timeout: self.timing.timeout,
                upstream: upstream.clone(),
                deadline: Instant::now(),
            },
            level: families(f),
        })]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Collector for VendorCollector {
    fn name(&self) -> &'static str {
        self.gauge
    }
    fn account(&self) -> &str {
        &self.account
    }
    fn collect(&mut self, deadline: Instant) -> BoxFuture<'_, Result<(), CollectError>> {
        async move {
            self.attempt.deadline = deadline;
            let attempt = self.attempt.clone();
            self.attempt.number += 1;
            let level = (self.poll)(&attempt).await?;
            self.level.set(&self.account, level);
            Ok(())
        }
        .boxed()
    }
    fn families(&self) -> Vec<&GaugeFamily> {
        vec![&self.level]
    }
    fn secrets(&self) -> Vec<secrecy::SecretString> {
        Vec::new()
    }
}
