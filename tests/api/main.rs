//! Integration tests: the exporter on port 0 against the simulator (and wiremock for
//! the clients), read through `/metrics`.

mod applications;
mod clients;
mod exporter;
mod faults;
mod golden;
mod helpers;
mod history;
mod reload;
mod serving;
mod shards;
mod spend;
mod status;
mod third_provider;
mod trust;
mod vendor;
mod yeastar;
