//! Which allocator the process runs on, and how its freed memory goes back to the
//! system.
//!
//! At 10,000 accounts the heap holds about half a million small, long-lived pieces
//! (81,000 collectors with their scheduler slots, status rows and self-metric series)
//! beside a few large buffers that come and go: the configuration's parse trees (a
//! 1.8 MB file of 11,000 accounts peaks at about 50 MiB) and each encode of the
//! exposition (a compressed body of 7.6 MB and its sort buffers, every time a poll
//! changed something).
//!
//! The glibc builds (the Debian packages, `cargo install`) run on jemalloc, set up by
//! [`JEMALLOC_CONF`]: glibc's malloc puts a header on every piece and keeps the holes
//! the large buffers leave between long-lived ones, jemalloc keeps pieces of one size
//! together without headers. Measured at 10,000 accounts (BENCHMARKS.md, "The
//! allocator"): about 7 MiB less resident memory after a minute of polls and scrapes,
//! and a lower peak. The musl builds (the static tarballs and the container image) keep
//! musl's own allocator, which returns freed memory by itself.
//!
//! [`release_freed`] hands the pages freed by a configuration load or an encode back at
//! once, whichever allocator runs.

/// jemalloc's options (read by jemalloc before `main`, through the `malloc_conf` symbol
/// the binary exports; `_RJEM_MALLOC_CONF` in the environment still overrides them):
///
/// - `narenas:1`: one arena. Four runtime threads allocate little at once; every arena
///   keeps its own free pages.
/// - `tcache:false`: no per-thread caches of freed pieces, which would hold memory per
///   thread for a speed the exporter does not need.
/// - `dirty_decay_ms:1000,muzzy_decay_ms:0`: freed pages go back to the system after a
///   second, not ten, and at once rather than in two steps.
/// - `background_thread:true`: a thread of jemalloc's does that, so that an idle
///   process gives its freed pages back too.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub const JEMALLOC_CONF: &[u8] =
    b"narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true\0";

/// Hand the pages that are free now back to the system (after a configuration was
/// loaded, after an encode). Under jemalloc: purge every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed() {
    // `arena.<i>.purge` with `MALLCTL_ARENAS_ALL` (4096 in jemalloc's headers).
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a purge reads and writes no caller memory (all pointers null, length
    // 0); it only returns the arenas' unused pages to the system. When the process
    // runs on another allocator (the library's tests), jemalloc has no arena and the
    // call changes nothing.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// jemalloc parses the options as text up to the NUL: one NUL, at the end, and
    /// every option a known `name:value`.
    #[test]
    fn the_jemalloc_options_are_one_c_string() {
        let conf = super::JEMALLOC_CONF;
        assert_eq!(conf.iter().position(|&b| b == 0), Some(conf.len() - 1));
        let text = std::str::from_utf8(&conf[..conf.len() - 1]).unwrap();
        for option in text.split(',') {
            let (name, value) = option.split_once(':').expect("name:value");
            assert!(
                [
                    "narenas",
                    "tcache",
                    "dirty_decay_ms",
                    "muzzy_decay_ms",
                    "background_thread"
                ]
                .contains(&name),
                "{name}"
            );
            assert!(!value.is_empty());
        }
    }
}
