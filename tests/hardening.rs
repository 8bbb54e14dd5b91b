//! Hardening: every upstream fault maps to one `reason` and is retried (or not) as
//! documented; the exporter keeps serving under abuse; `/metrics` can be protected
//! with TLS and basic auth; secrets never show up anywhere.
//!
//! Upstream faults run one collector attempt directly against the simulator (or a raw
//! TCP peer for what the simulator cannot do); the rest spawns the whole app.

#[path = "hardening/support.rs"]
mod support;

#[path = "hardening/faults.rs"]
mod faults;
#[path = "hardening/protection.rs"]
mod protection;
#[path = "hardening/resilience.rs"]
mod resilience;
#[path = "hardening/secrets.rs"]
mod secrets;
