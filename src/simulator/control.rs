//! What tests see of the simulator and do to it: injected faults, request counts, the
//! peak of concurrent requests and the request log (headers included).
//!
//! This is a test surface only: it exists with the `test-control` feature (which the
//! test suite turns on through its dev-dependency) and in the crate's own unit tests.
//! Without it, as in every release build, the [`Recorder`] below keeps nothing, records
//! nothing and injects nothing, and none of these methods exist.

#[cfg(any(test, feature = "test-control"))]
pub(super) use enabled::Recorder;

#[cfg(not(any(test, feature = "test-control")))]
pub(super) use disabled::Recorder;

#[cfg(any(test, feature = "test-control"))]
mod enabled {
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Mutex, MutexGuard};

    use crate::simulator::route::{Fault, Route};
    use crate::simulator::{RecordedRequest, Simulator};

    /// How many requests the request log keeps (the most recent ones).
    pub const REQUEST_LOG_CAPACITY: usize = 4096;

    #[derive(Debug)]
    struct ActiveFault {
        fault: Fault,
        remaining: Option<u32>,
    }

    #[derive(Default)]
    struct Log {
        faults: HashMap<Route, VecDeque<ActiveFault>>,
        requests: VecDeque<RecordedRequest>,
        last: HashMap<Route, RecordedRequest>,
    }

    /// Counts, logs and faults of one simulator.
    pub(in crate::simulator) struct Recorder {
        log: Mutex<Log>,
        /// Requests per route; the map is complete from the start, so it is read
        /// unlocked.
        counts: HashMap<Route, AtomicU64>,
        unmatched: AtomicU64,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    /// Counts a request as in flight until dropped.
    pub(in crate::simulator) struct InFlight<'a>(&'a Recorder);

    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Recorder {
        pub fn new() -> Recorder {
            Recorder {
                log: Mutex::new(Log::default()),
                counts: Route::all().map(|r| (r, AtomicU64::new(0))).collect(),
                unmatched: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            }
        }

        fn lock(&self) -> MutexGuard<'_, Log> {
            // A panicking test thread must not take the simulator down with it.
            self.log.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// A request is being answered.
        pub fn enter(&self) -> InFlight<'_> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            InFlight(self)
        }

        /// Count and log `req`, and take the fault injected into its route, if any.
        pub fn record(&self, req: &RecordedRequest) -> Option<Fault> {
            match req.route {
                Some(route) => self.counts[&route].fetch_add(1, Ordering::SeqCst),
                None => self.unmatched.fetch_add(1, Ordering::SeqCst),
            };
            let mut log = self.lock();
            if log.requests.len() >= REQUEST_LOG_CAPACITY {
                log.requests.pop_front();
            }
            log.requests.push_back(req.clone());
            let route = req.route?;
            log.last.insert(route, req.clone());
            let queue = log.faults.get_mut(&route)?;
            let active = queue.front_mut()?;
            let fault = active.fault.clone();
            if let Some(remaining) = active.remaining.as_mut() {
                *remaining -= 1;
                if *remaining == 0 {
                    queue.pop_front();
                }
            }
            Some(fault)
        }
    }

    impl Simulator {
        fn recorder(&self) -> &Recorder {
            &self.shared.recorder
        }

        /// Makes `route` misbehave for the next `times` requests (`None`: until
        /// [`Simulator::clear_faults`]). Faults injected into the same route queue up in
        /// order.
        pub fn inject_fault(&self, route: Route, fault: Fault, times: Option<u32>) {
            if times == Some(0) {
                return;
            }
            self.recorder()
                .lock()
                .faults
                .entry(route)
                .or_default()
                .push_back(ActiveFault {
                    fault,
                    remaining: times,
                });
        }

        /// Removes every injected fault.
        pub fn clear_faults(&self) {
            self.recorder().lock().faults.clear();
        }

        /// Requests received on `route` (whatever the answer).
        pub fn request_count(&self, route: Route) -> u64 {
            self.recorder().counts[&route].load(Ordering::SeqCst)
        }

        /// Requests received on all routes, plus those on unknown paths.
        pub fn total_requests(&self) -> u64 {
            let r = self.recorder();
            let known: u64 = r.counts.values().map(|c| c.load(Ordering::SeqCst)).sum();
            known + r.unmatched.load(Ordering::SeqCst)
        }

        /// The most recent requests, oldest first (at most [`REQUEST_LOG_CAPACITY`]).
        pub fn request_log(&self) -> Vec<RecordedRequest> {
            self.recorder().lock().requests.iter().cloned().collect()
        }

        /// When each logged request on `route` arrived, oldest first.
        pub fn request_times(&self, route: Route) -> Vec<std::time::Instant> {
            let log = self.recorder().lock();
            let on_route = log.requests.iter().filter(|r| r.route == Some(route));
            on_route.map(|r| r.received).collect()
        }

        /// The last request received on `route`.
        pub fn last_request(&self, route: Route) -> Option<RecordedRequest> {
            self.recorder().lock().last.get(&route).cloned()
        }

        /// The `User-Agent` of the last request on `route`.
        pub fn last_user_agent(&self, route: Route) -> Option<String> {
            self.last_request(route)?.user_agent
        }

        /// Requests being answered right now.
        pub fn in_flight(&self) -> usize {
            self.recorder().in_flight.load(Ordering::SeqCst)
        }

        /// The largest number of requests answered at the same time so far.
        pub fn max_in_flight(&self) -> usize {
            self.recorder().max_in_flight.load(Ordering::SeqCst)
        }

        /// Zeroes the request counts, the peak in-flight figure and the request log.
        pub fn reset_counters(&self) {
            let r = self.recorder();
            for count in r.counts.values() {
                count.store(0, Ordering::SeqCst);
            }
            r.unmatched.store(0, Ordering::SeqCst);
            r.max_in_flight
                .store(r.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
            let mut log = r.lock();
            log.requests.clear();
            log.last.clear();
        }
    }
}

#[cfg(not(any(test, feature = "test-control")))]
mod disabled {
    use crate::simulator::route::Fault;
    use crate::simulator::RecordedRequest;

    /// Records nothing: the release build's simulator keeps no requests.
    pub(in crate::simulator) struct Recorder;

    impl Recorder {
        pub fn new() -> Recorder {
            Recorder
        }

        pub fn enter(&self) {}

        pub fn record(&self, _req: &RecordedRequest) -> Option<Fault> {
            None
        }
    }
}
