//! Configuration of one Ace Data Cloud account.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::fields::Fields;
use crate::fingerprint::{Fingerprint, Fingerprinter};
use crate::secret::Secret;
use crate::timing::Timing;

/// Default API base URL.
pub const DEFAULT_BASE_URL: &str = "https://platform.acedata.cloud";

/// The Ace Data Cloud collectors, as named in `collectors:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CollectorKind {
    Balance,
    DistributionStatus,
    DistributionLevels,
    DistributionHistory,
    Applications,
    Usage,
    Orders,
    AutoRecharge,
}

impl CollectorKind {
    /// All kinds, the default of `collectors:`.
    pub const ALL: [CollectorKind; 8] = [
        CollectorKind::Balance,
        CollectorKind::DistributionStatus,
        CollectorKind::DistributionLevels,
        CollectorKind::DistributionHistory,
        CollectorKind::Applications,
        CollectorKind::Usage,
        CollectorKind::Orders,
        CollectorKind::AutoRecharge,
    ];

    /// The name used in the config file.
    pub fn config_name(self) -> &'static str {
        match self {
            CollectorKind::Balance => "balance",
            CollectorKind::DistributionStatus => "distribution_status",
            CollectorKind::DistributionLevels => "distribution_levels",
            CollectorKind::DistributionHistory => "distribution_history",
            CollectorKind::Applications => "applications",
            CollectorKind::Usage => "usage",
            CollectorKind::Orders => "orders",
            CollectorKind::AutoRecharge => "auto_recharge",
        }
    }
}

/// Default cadence of the spend collector (`usage_interval`): the aggregate is a
/// heavier call than a balance.
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(300);

/// Commission-history sync settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistorySettings {
    /// `limit` of each page request.
    pub page_size: u32,
    /// How often a full pass recounts every record (picks up records that turned invalid).
    pub full_sync_interval: Duration,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            page_size: 100,
            full_sync_interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// `application_thresholds`: remaining amount under which an application of a
/// service is low, by service alias, with `*` for every service not named.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplicationThresholds {
    by_service: BTreeMap<String, f64>,
}

impl ApplicationThresholds {
    /// The wildcard key.
    pub const ANY: &'static str = "*";

    /// The threshold of `service`: its own, else the `*` one, else none.
    pub fn for_service(&self, service: &str) -> Option<f64> {
        self.by_service
            .get(service)
            .or_else(|| self.by_service.get(Self::ANY))
            .copied()
    }

    /// Read `application_thresholds` (a mapping of non-empty keys to non-negative
    /// finite numbers); every problem is reported with its path.
    fn parse(f: &mut Fields<'_>) -> ApplicationThresholds {
        const KEY: &str = "application_thresholds";
        let Some(map) = f.take::<serde_json::Map<String, serde_json::Value>>(KEY) else {
            return ApplicationThresholds::default();
        };
        let base = if f.path().is_empty() {
            KEY.to_string()
        } else {
            format!("{}.{KEY}", f.path())
        };
        let mut by_service = BTreeMap::new();
        for (service, value) in map {
            let path = format!("{base}.{service}");
            if service.trim().is_empty() {
                f.problem_at(&base, "a service name must not be empty");
                continue;
            }
            match value.as_f64() {
                Some(v) if v.is_finite() && v >= 0.0 => {
                    by_service.insert(service, v);
                }
                Some(_) => f.problem_at(&path, "must be a non-negative finite number"),
                None => f.problem_at(&path, "must be a number"),
            }
        }
        ApplicationThresholds { by_service }
    }
}

/// One configured Ace Data Cloud account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    /// The `account` label.
    pub name: String,
    pub base_url: String,
    /// The platform token.
    pub token: Secret,
    pub timing: Timing,
    pub low_balance_threshold: Option<f64>,
    /// POST distribution-statuses/initialize/ when no status exists yet.
    pub initialize_distribution: bool,
    /// Sent as `?user_id=` on list calls.
    pub user_id: Option<String>,
    pub collectors: Vec<CollectorKind>,
    pub history: HistorySettings,
    /// Low-quota thresholds of the account's applications.
    pub application_thresholds: ApplicationThresholds,
    /// Cadence of the `acedata_usage` collector, never shorter than `timing.interval`.
    pub usage_interval: Duration,
}

impl AccountConfig {
    /// Read one account mapping; problems go to `f`.
    pub fn parse(f: &mut Fields<'_>, defaults: Timing) -> Option<Self> {
        let name = f.string("name", true);
        let base_url = f.url("base_url", DEFAULT_BASE_URL);
        let token = f.secret("token", true);
        let timing = f.timing(defaults);
        let low_balance_threshold = f.finite("low_balance_threshold");
        let initialize_distribution = f.take::<bool>("initialize_distribution").unwrap_or(true);
        let user_id = f.string("user_id", false);
        let collectors = collectors(f);
        let application_thresholds = ApplicationThresholds::parse(f);
        let usage_interval = usage_interval(f, timing);
        let history = match f.object("history") {
            Some(mut h) => {
                let d = HistorySettings::default();
                let page_size = h.take::<u32>("page_size").unwrap_or(d.page_size);
                if page_size == 0 || page_size > 1000 {
                    h.problem("page_size", "must be between 1 and 1000");
                }
                let full_sync_interval = h
                    .duration("full_sync_interval")
                    .unwrap_or(d.full_sync_interval);
                h.finish();
                HistorySettings {
                    page_size,
                    full_sync_interval,
                }
            }
            None => HistorySettings::default(),
        };
        Some(AccountConfig {
            name: name?,
            base_url,
            token: token?,
            timing,
            low_balance_threshold,
            initialize_distribution,
            user_id,
            collectors: collectors?,
            history,
            application_thresholds,
            usage_interval,
        })
    }

    /// The fingerprint of every key (a key added to the struct and not fed here does
    /// not compile: the destructuring names them all, and an unused one is a lint
    /// error).
    pub fn fingerprint(&self) -> Fingerprint {
        let AccountConfig {
            name,
            base_url,
            token,
            timing,
            low_balance_threshold,
            initialize_distribution,
            user_id,
            collectors,
            history,
            application_thresholds,
            usage_interval,
        } = self;
        let mut f = Fingerprinter::new();
        f.key("name", name).key("base_url", base_url);
        token.fingerprint("token", &mut f);
        f.key("timing", timing)
            .number("low_balance_threshold", *low_balance_threshold)
            .key("initialize_distribution", initialize_distribution)
            .key("user_id", user_id)
            .key("collectors", collectors)
            .key("history", history)
            .key("usage_interval", usage_interval);
        let thresholds = &application_thresholds.by_service;
        f.key("application_thresholds", &thresholds.len());
        for (service, threshold) in thresholds {
            f.number(service, Some(*threshold));
        }
        f.finish()
    }

    /// The cadence of one of the account's collectors: `usage_interval` for the spend
    /// collector, the account's `interval` for every other.
    pub fn timing_of(&self, collector: &str) -> Timing {
        if collector == super::usage::NAME {
            Timing {
                interval: self.usage_interval,
                ..self.timing
            }
        } else {
            self.timing
        }
    }
}

/// `usage_interval`: given, it must lie between the account's `interval` and its
/// `max_staleness`; unset, it is the default brought down to half of `max_staleness`
/// (a poll's jitter and duration must fit before its values count as stale) and up to
/// the `interval`.
fn usage_interval(f: &mut Fields<'_>, timing: Timing) -> Duration {
    // Bounds that did not parse are unknown: only the value's own problem is reported.
    let bounds_ok = !f.timing_unknown("interval") && !f.timing_unknown("max_staleness");
    match f.duration("usage_interval") {
        Some(d) if !bounds_ok => d,
        Some(d) if d < timing.interval => {
            f.problem(
                "usage_interval",
                format!(
                    "{} is shorter than the interval {}",
                    humantime::format_duration(d),
                    humantime::format_duration(timing.interval)
                ),
            );
            timing.interval
        }
        Some(d) if d > timing.max_staleness => {
            f.problem(
                "usage_interval",
                format!(
                    "{} is longer than max_staleness {}: spend values would vanish between two polls",
                    humantime::format_duration(d),
                    humantime::format_duration(timing.max_staleness)
                ),
            );
            d
        }
        Some(d) => d,
        None => DEFAULT_USAGE_INTERVAL
            .min(timing.max_staleness / 2)
            .max(timing.interval),
    }
}

fn collectors(f: &mut Fields<'_>) -> Option<Vec<CollectorKind>> {
    if !f.has("collectors") {
        let _ = f.take::<serde_json::Value>("collectors");
        return Some(CollectorKind::ALL.to_vec());
    }
    let names = f.take::<Vec<String>>("collectors")?;
    let mut out = Vec::new();
    let mut ok = true;
    // Entries are named by their position: a mistyped entry is never repeated.
    for (i, n) in names.iter().enumerate() {
        let entry = format!("collectors[{i}]");
        match CollectorKind::ALL.iter().find(|k| k.config_name() == n) {
            Some(k) if out.contains(k) => {
                f.problem(&entry, format!("{} is listed twice", k.config_name()));
                ok = false;
            }
            Some(k) => out.push(*k),
            None => {
                let known: Vec<_> = CollectorKind::ALL.iter().map(|k| k.config_name()).collect();
                f.problem(
                    &entry,
                    format!("is not a collector: expected one of {}", known.join(", ")),
                );
                ok = false;
            }
        }
    }
    if names.is_empty() {
        f.problem("collectors", "must list at least one collector");
        ok = false;
    }
    ok.then_some(out)
}

#[cfg(test)]
mod spend_tests {
    use super::*;
    use crate::config::Config;

    fn account(extra: &str) -> Result<AccountConfig, String> {
        let yaml = format!("acedata:\n  - name: main\n    token: t\n{extra}");
        Config::from_yaml(&yaml, &crate::providers::all())
            .map(|c| c.accounts::<AccountConfig>().next().unwrap().clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn usage_interval_sets_only_the_spend_collectors_cadence() {
        let a = account("    usage_interval: 10m\n").unwrap();
        assert_eq!(
            a.timing_of("acedata_usage").interval,
            Duration::from_secs(600)
        );
        assert_eq!(a.timing_of("acedata_usage").timeout, a.timing.timeout);
        assert_eq!(a.timing_of("acedata_orders"), a.timing);
        assert_eq!(
            a.timing_of("acedata_balance").interval,
            Duration::from_secs(60)
        );

        assert_eq!(account("").unwrap().usage_interval, DEFAULT_USAGE_INTERVAL);
        // Unset, it follows a longer interval and a shorter max_staleness.
        let slow = account("    interval: 15m\n").unwrap();
        assert_eq!(slow.usage_interval, Duration::from_secs(900));
        let fresh = account("    interval: 30s\n    max_staleness: 2m\n").unwrap();
        assert_eq!(fresh.usage_interval, Duration::from_secs(60));
        // Never as long as max_staleness: the values would vanish between two polls.
        let tight = account("    interval: 1s\n    max_staleness: 3s\n").unwrap();
        assert_eq!(tight.usage_interval, Duration::from_millis(1500));
    }

    #[test]
    fn usage_interval_outside_its_bounds_is_named() {
        let e = account("    interval: 5m\n    usage_interval: 1m\n").unwrap_err();
        assert!(
            e.contains("acedata[0].usage_interval: 1m is shorter than the interval 5m"),
            "{e}"
        );
        let e = account("    usage_interval: 2h\n").unwrap_err();
        assert!(
            e.contains("acedata[0].usage_interval: 2h is longer than max_staleness 1h"),
            "{e}"
        );
        let e = account("    usage_interval: soon\n    collectors: [usage, nope]\n").unwrap_err();
        assert!(
            e.contains("acedata[0].usage_interval: is not a duration"),
            "{e}"
        );
        assert!(
            !e.contains("soon"),
            "the mistyped value is not repeated: {e}"
        );
        assert!(
            e.contains("acedata[0].collectors[1]: is not a collector"),
            "{e}"
        );
        assert!(
            !e.contains("nope"),
            "the mistyped value is not repeated: {e}"
        );
    }

    #[test]
    fn the_spend_collectors_are_named_in_collectors() {
        let a = account("    collectors: [usage, orders, auto_recharge]\n").unwrap();
        assert_eq!(
            a.collectors,
            [
                CollectorKind::Usage,
                CollectorKind::Orders,
                CollectorKind::AutoRecharge
            ]
        );
    }
}
