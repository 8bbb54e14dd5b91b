//! `providers::acedata::auto_recharge::parse_page` on arbitrary bytes: an error is fine, a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = balance_exporter::providers::acedata::auto_recharge::parse_page(body);
});
