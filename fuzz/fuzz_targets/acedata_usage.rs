//! `providers::acedata::usage::parse_aggregate` on arbitrary bytes: an error is fine, a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    // Early in a month, so that both windows reach back into the month before.
    let today = time::Date::from_calendar_date(2024, time::Month::March, 3).unwrap();
    let _ = balance_exporter::providers::acedata::usage::parse_aggregate(body, today);
});
