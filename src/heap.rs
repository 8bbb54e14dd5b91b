//! How the process's heap is handed back to the system (glibc only; elsewhere these do
//! nothing).
//!
//! glibc keeps freed memory for reuse. Two moments leave a lot of it behind: parsing a
//! large configuration (the YAML tree is many times the size of the file: a 1.8 MB
//! file of 11,000 accounts peaks at about 50 MiB), and encoding a large exposition
//! (at 10,000 accounts, a compressed body of 5 MB and its sort buffers, every time a
//! poll changed something). Without [`tune`] and [`release_freed`], every replica of a
//! sharded deployment would stay at the peak of parsing the whole file, and a large
//! single process at the peak of its last encode.

/// Set once at start-up, before any thread exists. Allocations of 256 kB and more get
/// pages of their own that go back to the system when freed. By default glibc raises
/// this threshold to the size of the largest such block ever freed (up to 32 MiB),
/// after which the encoder's buffers come from the heap and stay there.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    /// `M_MMAP_THRESHOLD` and `M_ARENA_MAX` in glibc's `malloc.h`.
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    const M_ARENA_MAX: std::ffi::c_int = -8;
    // SAFETY: mallopt only changes allocator parameters; called before other threads
    // start, as its documentation asks.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
        // Two arenas (the runtime has two worker threads) instead of eight per core:
        // each arena keeps its own free memory.
        mallopt(M_ARENA_MAX, 2);
    }
}

/// Hand the heap pages that are free now back to the system (after a configuration
/// was loaded).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's malloc_trim only returns free memory to the system; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() {}
