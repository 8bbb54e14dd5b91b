//! The exporter's own metrics (namespace `balance_exporter`): the metrics primitives
//! filled with what the scheduler knows of each collector, its error reasons included.

use crate::collector::CollectError;
use crate::metrics::{CounterVec, GaugeVec, Registry};

/// The exporter's own metrics (namespace `balance_exporter`).
#[derive(Clone)]
pub struct SelfMetrics {
    pub success: GaugeVec,
    pub last_success: GaugeVec,
    pub duration: GaugeVec,
    pub errors: CounterVec,
    pub low_balance_threshold: GaugeVec,
    /// `balance_exporter_shard_ordinal`: this replica's shard index.
    pub shard_ordinal: GaugeVec,
    /// `balance_exporter_total_shards`: the `--total-shards` this replica runs with.
    pub total_shards: GaugeVec,
    /// `balance_exporter_accounts{provider}`: accounts this replica polls.
    pub accounts: GaugeVec,
    /// `balance_exporter_scheduler_lag_seconds`: how late the most overdue attempt is.
    pub scheduler_lag: GaugeVec,
}

impl SelfMetrics {
    /// Register the self-metrics and `balance_exporter_build_info` into `registry`.
    pub fn new(registry: &Registry) -> Self {
        let cl = &["collector", "account"];
        let success = GaugeVec::new(
            registry,
            "balance_exporter_collector_success",
            "Whether the collector's last attempt succeeded (1) or failed (0).",
            cl,
        );
        let last_success = GaugeVec::new(
            registry,
            "balance_exporter_collector_last_success_timestamp_seconds",
            "Unix time of the collector's last successful attempt.",
            cl,
        );
        let duration = GaugeVec::new(
            registry,
            "balance_exporter_collector_duration_seconds",
            "Duration of the collector's last attempt in seconds.",
            cl,
        );
        let errors = CounterVec::prefilled(
            registry,
            "balance_exporter_collector_errors_total",
            "Failed collection attempts by reason: one per scheduled attempt that failed after its retries.",
            &["collector", "account", "reason"],
            &CollectError::REASONS,
        );
        let low_balance_threshold = GaugeVec::new(
            registry,
            "balance_exporter_low_balance_threshold",
            "Configured low-balance alert threshold of the account.",
            &["provider", "account"],
        );
        let shard_ordinal = GaugeVec::new(
            registry,
            "balance_exporter_shard_ordinal",
            "Index of the shard of accounts this replica polls (--shard; 0 without sharding).",
            &[],
        );
        let total_shards = GaugeVec::new(
            registry,
            "balance_exporter_total_shards",
            "Number of shards the accounts are split into (--total-shards).",
            &[],
        );
        let accounts = GaugeVec::new(
            registry,
            "balance_exporter_accounts",
            "Configured accounts this replica polls (those of its shard).",
            &["provider"],
        );
        let scheduler_lag = GaugeVec::new(
            registry,
            "balance_exporter_scheduler_lag_seconds",
            "How far behind its due time the most overdue collection attempt is, in seconds (0 when every attempt starts on time).",
            &[],
        );
        scheduler_lag.with_label_values(&[]).set(0.0);
        let build_info = GaugeVec::new(
            registry,
            "balance_exporter_build_info",
            "Build information of the running exporter; the value is always 1.",
            &["version", "revision", "rustc_version"],
        );
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("BALANCE_EXPORTER_REVISION"),
                env!("BALANCE_EXPORTER_RUSTC_VERSION"),
            ])
            .set(1.0);
        SelfMetrics {
            success,
            last_success,
            duration,
            errors,
            low_balance_threshold,
            shard_ordinal,
            total_shards,
            accounts,
            scheduler_lag,
        }
    }

    /// Create the error counters of a collector at zero for every reason, so that
    /// `rate()` and `increase()` see the first failure.
    pub fn init_collector(&self, collector: &str, account: &str) {
        // One reason creates them all (see `CounterVec::prefilled`).
        let any = CollectError::REASONS[0];
        self.errors.with_label_values(&[collector, account, any]);
    }

    /// Remove every self-metric series of a collector (its account left the config).
    pub fn remove_collector(&self, collector: &str, account: &str) {
        let labels = [collector, account];
        let _ = self.success.remove_label_values(&labels);
        let _ = self.last_success.remove_label_values(&labels);
        let _ = self.duration.remove_label_values(&labels);
        // One reason removes them all (see `CounterVec::prefilled`).
        let any = CollectError::REASONS[0];
        let _ = self.errors.remove_label_values(&[collector, account, any]);
    }
}
