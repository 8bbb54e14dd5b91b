//! `Config::from_yaml` on arbitrary text: problems are fine, a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = balance_exporter::config::Config::from_yaml(text, &balance_exporter::providers::all());
});
