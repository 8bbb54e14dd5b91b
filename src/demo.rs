//! `--demo`: the embedded simulator of both vendors on loopback, polled like two
//! real accounts named `demo`.

use std::net::SocketAddr;

use crate::config::{Config, ConfigError};
use crate::simulator::{
    Simulator, DEMO_ACEDATA_TOKEN, DEMO_YEASTAR_CLIENT_ID, DEMO_YEASTAR_CLIENT_SECRET,
};

/// The demo configuration for a simulator at `base_url`.
pub fn config(base_url: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(&format!(
        r#"
defaults:
  interval: 10s
  timeout: 5s
  max_staleness: 5m
acedata:
  - name: demo
    base_url: {base_url}
    token: {DEMO_ACEDATA_TOKEN}
    low_balance_threshold: 50
    user_id: me
    history: {{ page_size: 10, full_sync_interval: 5m }}
    application_thresholds: {{ midjourney: 100, "*": 20 }}
yeastar:
  - name: demo
    base_url: {base_url}
    client_id: {DEMO_YEASTAR_CLIENT_ID}
    client_secret: {DEMO_YEASTAR_CLIENT_SECRET}
    low_balance_threshold: 100
"#
    ))
}

/// Start the simulator on a free loopback port and return the configuration that
/// polls it. Keep the simulator alive as long as the exporter runs.
pub async fn start() -> Result<(Config, Simulator), Box<dyn std::error::Error + Send + Sync>> {
    let sim = Simulator::start_demo(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let config = config(&sim.base_url())?;
    tracing::info!(simulator = %sim.base_url(), "demo mode: polling the embedded simulator");
    Ok((config, sim))
}
