//! `providers::acedata::model::parse_statuses` on arbitrary bytes: an error is fine, a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = balance_exporter::providers::acedata::model::parse_statuses(body);
});
