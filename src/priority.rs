//! Background work runs at a lower CPU priority than the threads that answer requests.
//!
//! Polling (the collectors' attempts, their upstream connections and parsing) and
//! re-encoding the exposition can keep every core busy at 10,000 accounts. A scrape or
//! a `/-/healthy` probe waits for none of it: the server's runtime threads keep the
//! default priority, and the scheduler's runtime ([`background_runtime`]) and the
//! encoder thread run at [`BACKGROUND_NICE`]. On an idle machine this changes nothing;
//! on a busy one the kernel gives the cores to the request threads first and the
//! background work the rest (the scheduler's lag gauge shows when that is too little).

/// How much lower than the process's priority background threads run (nice is 0 by
/// default, 19 at the lowest priority).
pub const BACKGROUND_NICE: i32 = 5;

/// Set the calling thread's nice value to the process's (its main thread's) plus
/// [`BACKGROUND_NICE`]. Relative to the main thread, not to the caller: a thread that a
/// background thread starts (a blocking thread of the collectors' runtime, say) is
/// lowered once, not twice. On Linux the nice value belongs to a thread:
/// `setpriority(PRIO_PROCESS, 0, …)` changes the calling one only. Where the call is
/// refused (a seccomp filter, say) the thread keeps its priority.
#[cfg(target_os = "linux")]
pub fn lower_current_thread() {
    extern "C" {
        fn getpriority(which: std::ffi::c_int, who: std::ffi::c_uint) -> std::ffi::c_int;
        fn setpriority(
            which: std::ffi::c_int,
            who: std::ffi::c_uint,
            prio: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    const PRIO_PROCESS: std::ffi::c_int = 0;
    // The main thread's id is the process id. getpriority's -1 is also an error value;
    // taken as the nice value it only makes the target one step higher.
    // SAFETY: getpriority and setpriority read and change a scheduling attribute of a
    // thread of this process; no memory is passed.
    unsafe {
        let base = getpriority(PRIO_PROCESS, std::process::id());
        let _ = setpriority(PRIO_PROCESS, 0, (base + BACKGROUND_NICE).min(19));
    }
}

#[cfg(not(target_os = "linux"))]
pub fn lower_current_thread() {}

/// A multi-thread runtime of `workers` threads named `collect`, each (and each of its
/// blocking threads) at [`BACKGROUND_NICE`]: where the scheduler, its attempts and
/// their upstream connections run (`Settings::collect_on`).
pub fn background_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name("collect")
        .on_thread_start(lower_current_thread)
        .enable_all()
        .build()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The nice value of the calling thread, from `/proc/thread-self/stat` (field 19).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) may hold spaces: fields are counted after its ')'.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_background_runtime_runs_its_tasks_at_the_lower_priority() {
        // The test harness runs this on a thread of its own, at the process's nice.
        let base = own_nice();
        let rt = background_runtime(1).unwrap();
        let (worker, blocking) = rt.block_on(async {
            let worker = tokio::spawn(async { own_nice() }).await.unwrap();
            // Started from a worker that is lowered already: still lowered once.
            let blocking = tokio::spawn(async { tokio::task::spawn_blocking(own_nice).await })
                .await
                .unwrap()
                .unwrap();
            (worker, blocking)
        });
        let expected = (base + BACKGROUND_NICE).min(19);
        assert_eq!(
            (worker, blocking),
            (expected, expected),
            "started at {base}"
        );
        let name = rt.block_on(async {
            tokio::spawn(async { std::thread::current().name().map(str::to_string) })
                .await
                .unwrap()
        });
        assert_eq!(name.as_deref(), Some("collect"));
    }
}
