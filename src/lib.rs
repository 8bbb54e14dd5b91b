//! balance-exporter: a Prometheus exporter for API-platform credit balances.

pub mod simulator;
