//! What the shared server asks of a simulated vendor: answers to its routes, in its own
//! styles of success and error.

use std::any::Any;

use super::reply::Reply;
use super::route::{Fault, Route};
use super::{RecordedRequest, SimOptions};

/// One simulated vendor: its state and how it answers.
pub(crate) trait Vendor: Send + 'static {
    /// The name its routes carry ([`Route::vendor`]).
    fn name(&self) -> &'static str;
    /// Whether an unknown `path` looks like this vendor's, so that the 404 comes in its
    /// style.
    fn claims(&self, path: &str) -> bool;
    /// 404 for an unknown path this vendor claims.
    fn not_found(&self) -> Reply;
    /// 405 for one of its routes called with another method.
    fn method_not_allowed(&self, route: Route, method: &str) -> Reply;
    /// The answer to a well-formed request on one of its routes.
    fn answer(
        &mut self,
        route: Route,
        req: &RecordedRequest,
        body: &[u8],
        opts: &SimOptions,
    ) -> Reply;
    /// The answer to an injected fault that the vendor shows in its own style (status
    /// codes, rate limits, malformed or wrongly typed bodies, API errors, echoed
    /// credentials).
    fn fault(&self, route: Route, fault: &Fault, req: &RecordedRequest) -> Reply;
    /// The concrete state, for the vendor's own control methods.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}
