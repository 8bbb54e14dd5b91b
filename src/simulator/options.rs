//! The simulated scenario: latency and drift for every vendor, and each vendor's knobs.

use std::time::Duration;

use super::acedata::SimPackage;

/// Order in which `distribution-histories` lists records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryOrder {
    /// The newest record is at offset 0.
    #[default]
    NewestFirst,
    /// The oldest record is at offset 0.
    OldestFirst,
}

/// The key holding the page in Ace Data Cloud list responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListKey {
    /// `{count, results}`, as the vendor documents.
    #[default]
    Results,
    /// `{count, items}`, as the vendor's own clients read.
    Items,
}

/// The shape of the usage aggregate answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageShape {
    /// `{results, total, api_map: {id: {name, path}}}`, as the vendor documents.
    #[default]
    Results,
    /// `{items, total, apis: {id: {title}}}`, as the vendor's own clients read.
    Items,
}

/// Simulator behaviour. [`Default`] is deterministic seed data, no drift, no latency.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Delay before every answer.
    pub latency: Duration,
    /// Let values change slowly with wall time (the demo).
    pub drift: bool,
    /// Commission records each new Ace Data Cloud account starts with (default 20, the
    /// seed's `count`).
    pub history_records: usize,
    /// Order of `distribution-histories`.
    pub history_order: HistoryOrder,
    /// Key of the page in Ace Data Cloud list responses.
    pub list_key: ListKey,
    /// List endpoints answer 403 `permission_denied` without `?user_id=`.
    pub require_user_id: bool,
    /// Whether new Ace Data Cloud accounts already have a distribution status; when false,
    /// `distribution-statuses` lists nothing until `POST …/initialize/`.
    pub status_initialized: bool,
    /// Lifetime of issued Yeastar access tokens, sent as `expiresIn` (default 1800).
    pub token_ttl_secs: u64,
    /// `limit` used when the request has none (or an invalid one); default 10.
    pub default_page_size: usize,
    /// Largest `limit` honoured; larger ones are cut to it (default: no cap).
    pub max_page_size: Option<usize>,
    /// With drift, how often a new commission record appears (default 30 s).
    pub history_interval: Duration,
    /// Packages of new Ace Data Cloud accounts (default: the seed's single package).
    pub packages: Vec<SimPackage>,
    /// The Yeastar token endpoint repeats the credential it was sent in its error, as a
    /// careless upstream might (for trying the status page's redaction in `--demo`).
    pub echo_credentials: bool,
    /// Shape of `GET /api/v1/usage/apis/aggregate/`.
    pub usage_shape: UsageShape,
    /// A fixed "now" (Unix seconds) for the spend data (usage dates, order ages);
    /// `None` follows the wall clock.
    pub now: Option<i64>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            latency: Duration::ZERO,
            drift: false,
            history_records: 20,
            history_order: HistoryOrder::NewestFirst,
            list_key: ListKey::Results,
            require_user_id: false,
            status_initialized: true,
            token_ttl_secs: 1800,
            default_page_size: 10,
            max_page_size: None,
            history_interval: Duration::from_secs(30),
            packages: vec![SimPackage::seed()],
            echo_credentials: false,
            usage_shape: UsageShape::Results,
            now: None,
        }
    }
}

impl SimOptions {
    /// The options `--demo` runs with: drift on, 25 commission records, two packages.
    pub fn demo() -> SimOptions {
        SimOptions {
            drift: true,
            history_records: 25,
            packages: vec![
                SimPackage::seed(),
                SimPackage {
                    id: "pkg-uuid-pro".into(),
                    name: "Pro Package".into(),
                    amount: 1000,
                    price: "89.90".into(),
                },
            ],
            ..SimOptions::default()
        }
    }
}
