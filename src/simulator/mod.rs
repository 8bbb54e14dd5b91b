//! An in-process simulator of the vendors' APIs on loopback, for `--demo` and for tests
//! and benchmarks.
//!
//! One HTTP/1.1 server serves every vendor; their paths differ. This module is the
//! shared part: it records and counts requests, applies latency and injected faults, and
//! hands each request to the vendor whose route it is (see [`vendors`]); it knows no
//! vendor. Each vendor module ([`acedata`], [`yeastar`]) holds its routes, its state, its
//! answers (following the vendors' documented examples field for field) and its error
//! styles.
//!
//! With [`SimOptions::drift`] off everything is deterministic; with it on, values change
//! slowly with wall time, as each vendor module describes.

pub mod acedata;
mod clock;
mod control;
mod options;
mod reply;
mod route;
mod vendor;
pub mod vendors;
pub mod yeastar;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use options::{HistoryOrder, ListKey, SimOptions, UsageShape};
pub use route::{Fault, Route};

use reply::Reply;
use vendor::Vendor;

/// Largest request body read; anything beyond is treated as an empty body.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Listen backlog, sized for benchmarks that open a thousand connections at once.
const LISTEN_BACKLOG: u32 = 4096;

/// How long [`Simulator::shutdown`] lets in-flight answers finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// One request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The route, or `None` for a path the simulator does not serve.
    pub route: Option<Route>,
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The request body (lossily decoded as UTF-8).
    pub body: String,
    /// When the request head arrived (tests measure the spacing of requests with it).
    pub received: std::time::Instant,
}

impl RecordedRequest {
    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The first value of form field `name` in the body.
    pub fn form_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

struct State {
    opts: SimOptions,
    vendors: Vec<Box<dyn Vendor>>,
}

struct SimCore {
    state: Mutex<State>,
    /// Counts, logs and faults: the test surface (see [`control`]).
    recorder: control::Recorder,
}

impl SimCore {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the simulator down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the server when the last [`Simulator`] handle goes away.
#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A running simulator. Cheap to clone; the server stops when the last clone is dropped
/// or on [`Simulator::shutdown`].
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<SimCore>,
    server: Arc<Server>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1` on a free port.
    pub async fn start(opts: SimOptions) -> std::io::Result<Simulator> {
        Simulator::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), opts).await
    }

    /// Starts a simulator on `addr`.
    pub async fn start_on(addr: SocketAddr, opts: SimOptions) -> std::io::Result<Simulator> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let local = listener.local_addr()?;
        let shared = Arc::new(SimCore {
            state: Mutex::new(State {
                opts,
                vendors: vendors::all(),
            }),
            recorder: control::Recorder::new(),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, shared.clone(), cancel.clone()));
        Ok(Simulator {
            shared,
            server: Arc::new(Server {
                addr: local,
                cancel,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Run `f` on the state of vendor `V` (for the vendors' own control methods).
    pub(crate) fn vendor<V: Vendor, T>(&self, f: impl FnOnce(&mut V, &SimOptions) -> T) -> T {
        let mut state = self.shared.lock();
        let State { opts, vendors, .. } = &mut *state;
        let vendor = vendors
            .iter_mut()
            .find_map(|v| v.as_any_mut().downcast_mut::<V>())
            .expect("the vendor is listed");
        f(vendor, opts)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL of every vendor.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The current options.
    pub fn options(&self) -> SimOptions {
        self.shared.lock().opts.clone()
    }

    /// Changes options of the running simulator (e.g. the history order or list key).
    /// Options that shape new accounts only affect accounts added afterwards.
    pub fn update_options(&self, change: impl FnOnce(&mut SimOptions)) {
        change(&mut self.shared.lock().opts);
    }

    /// Stops accepting connections and lets in-flight answers finish (for up to two
    /// seconds). Other clones of this handle stop working too.
    pub async fn shutdown(self) {
        self.server.cancel.cancel();
        let task = self
            .server
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn serve(listener: TcpListener, shared: Arc<SimCore>, cancel: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors under a benchmark: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = service_fn(move |req| handle(shared.clone(), req));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

fn header(req: &Request<Incoming>, name: hyper::header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn handle(
    shared: Arc<SimCore>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _in_flight = shared.recorder.enter();
    let route = Route::from_path(req.uri().path());
    let mut recorded = RecordedRequest {
        route,
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        user_agent: header(&req, USER_AGENT),
        authorization: header(&req, AUTHORIZATION),
        content_type: header(&req, CONTENT_TYPE),
        body: String::new(),
        received: std::time::Instant::now(),
    };
    let body = Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    recorded.body = String::from_utf8_lossy(&body).into_owned();

    let fault = shared.recorder.record(&recorded);
    let latency = shared.lock().opts.latency;

    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let (Some(route), Some(fault)) = (route, fault) {
        if let Fault::Delay(delay) = fault {
            tokio::time::sleep(delay).await;
        } else {
            let reply = reply::common_fault(&fault).unwrap_or_else(|| {
                let mut state = shared.lock();
                vendor_of(&mut state, route).fault(route, &fault, &recorded)
            });
            return Ok(reply.into_response());
        }
    }

    let reply = {
        let mut state = shared.lock();
        dispatch(&mut state, route, &recorded, &body)
    };
    Ok(reply.into_response())
}

fn vendor_of(state: &mut State, route: Route) -> &mut dyn Vendor {
    state
        .vendors
        .iter_mut()
        .find(|v| v.name() == route.vendor())
        .map(|v| &mut **v)
        .expect("every route belongs to a listed vendor")
}

fn dispatch(state: &mut State, route: Option<Route>, req: &RecordedRequest, body: &[u8]) -> Reply {
    let Some(route) = route else {
        return match state.vendors.iter().find(|v| v.claims(&req.path)) {
            Some(v) => v.not_found(),
            None => Reply::raw(404, "text/plain", Bytes::from_static(b"not found")),
        };
    };
    if req.method != route.method() {
        return vendor_of(state, route).method_not_allowed(route, &req.method);
    }
    let opts = state.opts.clone();
    vendor_of(state, route).answer(route, req, body, &opts)
}
