//! `--demo`: the embedded simulator of both vendors on loopback, polled like two
//! real accounts named `demo`.
//!
//! For trying the status page (and for its browser test), the environment variable
//! [`DEMO_FAULT_ENV`] breaks the demo on purpose:
//! - `yeastar-secret`: the Yeastar account is configured with a wrong client secret,
//!   so `yeastar_balance` fails with the vendor's `invalid_client` answer;
//! - `yeastar-secret-echo`: the same, and the simulator's error message repeats the
//!   wrong secret back, as a careless upstream might (the status page must redact it).

use std::net::SocketAddr;

use crate::config::{Config, ConfigError};
use crate::simulator::vendors::{
    DEMO_ACEDATA_TOKEN, DEMO_YEASTAR_CLIENT_ID, DEMO_YEASTAR_CLIENT_SECRET,
};
use crate::simulator::{SimOptions, Simulator};

/// Environment variable that breaks the demo on purpose (see the module documentation).
pub const DEMO_FAULT_ENV: &str = "BALANCE_EXPORTER_DEMO_FAULT";

/// The client secret the demo uses when [`DEMO_FAULT_ENV`] breaks it.
pub const DEMO_WRONG_CLIENT_SECRET: &str = "demo-wrong-yeastar-secret-4c1d";

/// The demo configuration for a simulator at `base_url`.
pub fn config(base_url: &str) -> Result<Config, ConfigError> {
    config_with_secret(base_url, DEMO_YEASTAR_CLIENT_SECRET)
}

fn config_with_secret(base_url: &str, client_secret: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(
        &format!(
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
    application_thresholds: {{ midjourney: 100, suno: 50, "*": 20 }}
yeastar:
  - name: demo
    base_url: {base_url}
    client_id: {DEMO_YEASTAR_CLIENT_ID}
    client_secret: {client_secret}
    low_balance_threshold: 100
"#
        ),
        &crate::providers::all(),
    )
}

/// Start the simulator on a free loopback port and return the configuration that
/// polls it. Keep the simulator alive as long as the exporter runs.
pub async fn start() -> Result<(Config, Simulator), Box<dyn std::error::Error + Send + Sync>> {
    let fault = std::env::var(DEMO_FAULT_ENV).unwrap_or_default();
    let opts = SimOptions {
        echo_credentials: fault == "yeastar-secret-echo",
        ..SimOptions::demo()
    };
    let sim = Simulator::start_demo_with(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await?;
    let config = match fault.as_str() {
        "" => config(&sim.base_url())?,
        "yeastar-secret" | "yeastar-secret-echo" => {
            tracing::warn!(fault = %fault, "demo broken on purpose: the Yeastar client secret is wrong");
            config_with_secret(&sim.base_url(), DEMO_WRONG_CLIENT_SECRET)?
        }
        other => {
            return Err(format!(
                "{DEMO_FAULT_ENV}={other}: expected yeastar-secret or yeastar-secret-echo"
            )
            .into())
        }
    };
    tracing::info!(simulator = %sim.base_url(), "demo mode: polling the embedded simulator");
    Ok((config, sim))
}
