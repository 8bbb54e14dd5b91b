//! What tests see of the simulator and do to it: injected faults, request counts and
//! the request log.

use std::sync::atomic::Ordering;

use super::route::Fault;
use super::{ActiveFault, RecordedRequest, Route, Simulator};

impl Simulator {
    /// Makes `route` misbehave for the next `times` requests (`None`: until
    /// [`Simulator::clear_faults`]). Faults injected into the same route queue up in order.
    pub fn inject_fault(&self, route: Route, fault: Fault, times: Option<u32>) {
        if times == Some(0) {
            return;
        }
        self.shared
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
        self.shared.lock().faults.clear();
    }

    /// Requests received on `route` (whatever the answer).
    pub fn request_count(&self, route: Route) -> u64 {
        self.shared.counts[&route].load(Ordering::SeqCst)
    }

    /// Requests received on all routes, plus those on unknown paths.
    pub fn total_requests(&self) -> u64 {
        let known: u64 = self
            .shared
            .counts
            .values()
            .map(|c| c.load(Ordering::SeqCst))
            .sum();
        known + self.shared.unmatched.load(Ordering::SeqCst)
    }

    /// The most recent requests, oldest first (at most [`super::REQUEST_LOG_CAPACITY`]).
    pub fn request_log(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.iter().cloned().collect()
    }

    /// The last request received on `route`.
    pub fn last_request(&self, route: Route) -> Option<RecordedRequest> {
        self.shared.lock().last.get(&route).cloned()
    }

    /// The `User-Agent` of the last request on `route`.
    pub fn last_user_agent(&self, route: Route) -> Option<String> {
        self.last_request(route)?.user_agent
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The largest number of requests answered at the same time so far.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Zeroes the request counts, the peak in-flight figure and the request log.
    pub fn reset_counters(&self) {
        for count in self.shared.counts.values() {
            count.store(0, Ordering::SeqCst);
        }
        self.shared.unmatched.store(0, Ordering::SeqCst);
        self.shared.max_in_flight.store(
            self.shared.in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
        let mut state = self.shared.lock();
        state.log.clear();
        state.last.clear();
    }
}
