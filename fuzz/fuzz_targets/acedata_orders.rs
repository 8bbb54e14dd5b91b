//! `providers::acedata::orders::parse_orders_page` and `summarize` on arbitrary bytes: an
//! error is fine, a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    use balance_exporter::providers::acedata::orders;
    if let Ok((_, page)) = orders::parse_orders_page(body) {
        let _ = orders::summarize(&page, 0.0);
    }
});
