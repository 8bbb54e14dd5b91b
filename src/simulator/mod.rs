//! An in-process simulator of the Ace Data Cloud and Yeastar Partner Portal APIs on
//! loopback, for `--demo` and for tests and benchmarks.
//!
//! Both vendors are served by one HTTP/1.1 server; their paths differ. Answers follow the
//! vendors' documented examples (seed documents 000, 001 and 002) field for field.
//!
//! Ace Data Cloud: every bearer token registered with [`Simulator::add_acedata_account`] is
//! an account with its own state. A missing token answers 401
//! `{"detail": "Authentication credentials were not provided."}`, an unknown one 401
//! `{"detail": "Invalid token."}` (the `{"detail": …}` error style; [`Fault::ApiError`]
//! produces the other documented style, `{"error": {"code", "message"}}`).
//! `distribution-histories` pages with `limit` (default [`SimOptions::default_page_size`])
//! and `offset`. The status's `level` object carries the id of the matching entry of
//! `distribution-levels` (`level-1-uuid`, where seed 002 shows the placeholder
//! `level-uuid`), so both endpoints agree. The `set_*` methods panic for a token that was
//! never registered: that is a mistake in the test, not a state to simulate.
//!
//! Yeastar Partner Portal: see the `yeastar` module for the error codes used.
//!
//! `applications` lists the seed applications of the `applications` module with `limit`
//! and `offset` like the history.
//!
//! With [`SimOptions::drift`] off everything is deterministic. With it on, credits fall by
//! 0.05 per second, the `midjourney` application's quota by 0.01 per second, the Yeastar
//! balance by 0.01 every ten seconds, and a new commission record (adding to the invitee
//! spend and the reward) appears every [`SimOptions::history_interval`].

mod acedata;
mod applications;
mod clock;
mod reply;
mod route;
mod yeastar;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

pub use acedata::SimPackage;
pub use applications::APPLICATION_TOKEN_PREFIX;
pub use route::{Fault, Route};

use acedata::AcedataAccount;
use reply::Reply;
use yeastar::YeastarState;

/// The platform token of the Ace Data Cloud account that `--demo` polls.
pub const DEMO_ACEDATA_TOKEN: &str = "demo-acedata-platform-token";
/// The client id of the Yeastar account that `--demo` polls.
pub const DEMO_YEASTAR_CLIENT_ID: &str = "demo-yeastar-client-id";
/// The client secret of the Yeastar account that `--demo` polls.
pub const DEMO_YEASTAR_CLIENT_SECRET: &str = "demo-yeastar-client-secret";

/// How many requests the request log keeps (the most recent ones).
pub const REQUEST_LOG_CAPACITY: usize = 4096;

/// Largest request body read; anything beyond is treated as an empty body.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Listen backlog, sized for benchmarks that open a thousand connections at once.
const LISTEN_BACKLOG: u32 = 4096;

/// How long [`Simulator::shutdown`] lets in-flight answers finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Order in which `distribution-histories` lists records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryOrder {
    /// The newest record is at offset 0.
    #[default]
    NewestFirst,
    /// The oldest record is at offset 0.
    OldestFirst,
}

/// The key holding the page in Ace Data Cloud list responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListKey {
    /// `{count, results}`, as the vendor documents.
    #[default]
    Results,
    /// `{count, items}`, as the vendor's own clients read.
    Items,
}

/// Simulator behaviour. [`Default`] is deterministic seed data, no drift, no latency.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Delay before every answer.
    pub latency: Duration,
    /// Let values change slowly with wall time (the demo).
    pub drift: bool,
    /// Commission records each new Ace Data Cloud account starts with (default 20, the
    /// seed's `count`).
    pub history_records: usize,
    /// Order of `distribution-histories`.
    pub history_order: HistoryOrder,
    /// Key of the page in Ace Data Cloud list responses.
    pub list_key: ListKey,
    /// List endpoints answer 403 `permission_denied` without `?user_id=`.
    pub require_user_id: bool,
    /// Whether new Ace Data Cloud accounts already have a distribution status; when false,
    /// `distribution-statuses` lists nothing until `POST …/initialize/`.
    pub status_initialized: bool,
    /// Lifetime of issued Yeastar access tokens, sent as `expiresIn` (default 1800).
    pub token_ttl_secs: u64,
    /// `limit` used when the request has none (or an invalid one); default 10.
    pub default_page_size: usize,
    /// Largest `limit` honoured; larger ones are cut to it (default: no cap).
    pub max_page_size: Option<usize>,
    /// With drift, how often a new commission record appears (default 30 s).
    pub history_interval: Duration,
    /// Packages of new Ace Data Cloud accounts (default: the seed's single package).
    pub packages: Vec<SimPackage>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            latency: Duration::ZERO,
            drift: false,
            history_records: 20,
            history_order: HistoryOrder::NewestFirst,
            list_key: ListKey::Results,
            require_user_id: false,
            status_initialized: true,
            token_ttl_secs: 1800,
            default_page_size: 10,
            max_page_size: None,
            history_interval: Duration::from_secs(30),
            packages: vec![SimPackage::seed()],
        }
    }
}

impl SimOptions {
    /// The options `--demo` runs with: drift on, 25 commission records, two packages.
    pub fn demo() -> SimOptions {
        SimOptions {
            drift: true,
            history_records: 25,
            packages: vec![
                SimPackage::seed(),
                SimPackage {
                    id: "pkg-uuid-pro".into(),
                    name: "Pro Package".into(),
                    amount: 1000,
                    price: "89.90".into(),
                },
            ],
            ..SimOptions::default()
        }
    }
}

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

#[derive(Debug)]
struct ActiveFault {
    fault: Fault,
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    opts: SimOptions,
    acedata: HashMap<String, AcedataAccount>,
    yeastar: YeastarState,
    faults: HashMap<Route, VecDeque<ActiveFault>>,
    log: VecDeque<RecordedRequest>,
    last: HashMap<Route, RecordedRequest>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    counts: [AtomicU64; Route::ALL.len()],
    unmatched: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the simulator down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
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
#[derive(Debug, Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    server: Arc<Server>,
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                opts,
                ..State::default()
            }),
            counts: Default::default(),
            unmatched: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
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

    /// Starts the `--demo` simulator on `addr`: [`SimOptions::demo`], with the account
    /// [`DEMO_ACEDATA_TOKEN`] and the client [`DEMO_YEASTAR_CLIENT_ID`] /
    /// [`DEMO_YEASTAR_CLIENT_SECRET`] registered.
    pub async fn start_demo(addr: SocketAddr) -> std::io::Result<Simulator> {
        let sim = Simulator::start_on(addr, SimOptions::demo()).await?;
        sim.add_acedata_account(DEMO_ACEDATA_TOKEN);
        sim.add_yeastar_client(DEMO_YEASTAR_CLIENT_ID, DEMO_YEASTAR_CLIENT_SECRET);
        Ok(sim)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL of both vendors.
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

    /// Registers an Ace Data Cloud account for platform token `token` with the seed
    /// values (credits `"100.00"`, the configured packages and history). Registering an
    /// existing token resets its account.
    pub fn add_acedata_account(&self, token: &str) {
        let mut state = self.shared.lock();
        let account = AcedataAccount::new(&state.opts);
        state.acedata.insert(token.to_owned(), account);
    }

    /// Removes an Ace Data Cloud account; its token then answers 401.
    pub fn remove_acedata_account(&self, token: &str) {
        self.shared.lock().acedata.remove(token);
    }

    fn with_account<T>(
        &self,
        token: &str,
        f: impl FnOnce(&mut AcedataAccount, &SimOptions) -> T,
    ) -> T {
        let mut state = self.shared.lock();
        let State { opts, acedata, .. } = &mut *state;
        let account = acedata
            .get_mut(token)
            .unwrap_or_else(|| panic!("no Ace Data Cloud account registered for that token"));
        account.tick(opts);
        f(account, opts)
    }

    /// Sets an account's credits, e.g. `"123.45"` (at most two decimals).
    ///
    /// # Panics
    /// When `token` is not registered or `credits` is not a non-negative decimal.
    pub fn set_credits(&self, token: &str, credits: &str) {
        let cents = parse_cents(credits)
            .unwrap_or_else(|| panic!("credits must look like \"123.45\", got {credits:?}"));
        self.with_account(token, |a, _| a.set_credits_cents(cents));
    }

    /// Replaces an account's packages.
    pub fn set_packages(&self, token: &str, packages: Vec<SimPackage>) {
        self.with_account(token, |a, _| a.set_packages(packages));
    }

    /// Sets the distribution status `price` (invitee spend); the level follows from the
    /// level thresholds. Creates the status if there is none.
    pub fn set_distribution_price(&self, token: &str, price: f64) {
        let cents = acedata::f64_to_cents(price);
        self.with_account(token, |a, _| a.set_distribution(Some(cents), None));
    }

    /// Sets the distribution status `reward`. Creates the status if there is none.
    pub fn set_distribution_reward(&self, token: &str, reward: f64) {
        let cents = acedata::f64_to_cents(reward);
        self.with_account(token, |a, _| a.set_distribution(None, Some(cents)));
    }

    /// Creates (seed values) or removes an account's distribution status.
    pub fn set_status_initialized(&self, token: &str, initialized: bool) {
        self.with_account(token, |a, _| a.set_status_initialized(initialized));
    }

    /// Appends a commission record as the newest one and returns its `id`. The status
    /// totals are not changed (set them with [`Simulator::set_distribution_price`]).
    pub fn add_history_record(
        &self,
        token: &str,
        reward: f64,
        order_price: f64,
        invalid: bool,
    ) -> String {
        let (reward, price) = (
            acedata::f64_to_cents(reward),
            acedata::f64_to_cents(order_price),
        );
        self.with_account(token, |a, opts| {
            a.add_history_record(reward, price, invalid, opts.drift)
        })
    }

    /// Marks the record at `index` (0 = the oldest record) invalid or valid.
    ///
    /// # Panics
    /// When the token is not registered or the index is out of range.
    pub fn set_history_invalid(&self, token: &str, index: usize, invalid: bool) {
        let found = self.with_account(token, |a, _| a.set_history_invalid(index, invalid));
        assert!(found, "no history record at index {index}");
    }

    /// Number of commission records of an account.
    pub fn history_len(&self, token: &str) -> usize {
        self.with_account(token, |a, _| a.history_len())
    }

    /// The applications of an account exactly as `GET /api/v1/applications/` lists them
    /// (API keys' tokens included).
    pub fn applications(&self, token: &str) -> Vec<serde_json::Value> {
        self.with_account(token, |a, _| a.applications().to_vec())
    }

    /// Adds an application (any JSON object; give it a unique `id`) at the end of the
    /// account's list.
    pub fn add_application(&self, token: &str, application: serde_json::Value) {
        self.with_account(token, |a, _| a.add_application(application));
    }

    /// Sets an application's `remaining_amount` and `used_amount` (whole cents).
    ///
    /// # Panics
    /// When the token is not registered or there is no application `id`.
    pub fn set_application_amounts(&self, token: &str, id: &str, remaining: f64, used: f64) {
        let found = self.with_account(token, |a, _| a.set_application_amounts(id, remaining, used));
        assert!(found, "no application {id}");
    }

    /// Removes an application.
    ///
    /// # Panics
    /// When the token is not registered or there is no application `id`.
    pub fn remove_application(&self, token: &str, id: &str) {
        let found = self.with_account(token, |a, _| a.remove_application(id));
        assert!(found, "no application {id}");
    }

    /// Removes API key `credential` of application `id`.
    ///
    /// # Panics
    /// When the token is not registered or there is no such key.
    pub fn remove_credential(&self, token: &str, id: &str, credential: &str) {
        let found = self.with_account(token, |a, _| a.remove_credential(id, credential));
        assert!(found, "no API key {credential} on application {id}");
    }

    /// Registers a Yeastar API client; its balance starts at the seed's 675.24.
    pub fn add_yeastar_client(&self, client_id: &str, client_secret: &str) {
        self.shared
            .lock()
            .yeastar
            .add_client(client_id, client_secret);
    }

    /// Registers a never-expiring Yeastar access token with its own balance (675.24).
    pub fn add_yeastar_static_token(&self, token: &str) {
        self.shared.lock().yeastar.add_static_token(token);
    }

    /// Sets the balance of a Yeastar account, named by client id or static token.
    ///
    /// # Panics
    /// When `account` is neither.
    pub fn set_yeastar_balance(&self, account: &str, balance: f64) {
        let found = self.shared.lock().yeastar.set_balance(account, balance);
        assert!(found, "no Yeastar client or static token {account:?}");
    }

    /// Makes every issued Yeastar access token expired (the balance call answers 401
    /// `access_token_expired`); refresh tokens stay valid. Static tokens are not affected.
    pub fn expire_yeastar_tokens(&self) {
        self.shared.lock().yeastar.expire_access_tokens();
    }

    /// Invalidates every issued Yeastar refresh token, so a refresh must fall back to
    /// client credentials.
    pub fn revoke_yeastar_refresh_tokens(&self) {
        self.shared.lock().yeastar.revoke_refresh_tokens();
    }

    /// Yeastar access tokens issued and not yet forgotten (expired ones included).
    pub fn yeastar_tokens_issued(&self) -> usize {
        self.shared.lock().yeastar.issued_access_tokens()
    }

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
        self.shared.counts[route.index()].load(Ordering::SeqCst)
    }

    /// Requests received on all routes, plus those on unknown paths.
    pub fn total_requests(&self) -> u64 {
        let known: u64 = self
            .shared
            .counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum();
        known + self.shared.unmatched.load(Ordering::SeqCst)
    }

    /// The most recent requests, oldest first (at most [`REQUEST_LOG_CAPACITY`]).
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
        for count in &self.shared.counts {
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

/// `"123.45"` → 12345. At most two decimals, no sign.
fn parse_cents(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

/// The token of an `Authorization: Bearer <token>` header value.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
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
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _in_flight = InFlight::enter(&shared);
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
    };
    let body = Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    recorded.body = String::from_utf8_lossy(&body).into_owned();

    match route {
        Some(route) => shared.counts[route.index()].fetch_add(1, Ordering::SeqCst),
        None => shared.unmatched.fetch_add(1, Ordering::SeqCst),
    };
    let (latency, fault) = {
        let mut state = shared.lock();
        if state.log.len() >= REQUEST_LOG_CAPACITY {
            state.log.pop_front();
        }
        state.log.push_back(recorded.clone());
        if let Some(route) = route {
            state.last.insert(route, recorded.clone());
        }
        let fault = route.and_then(|r| take_fault(&mut state, r));
        (state.opts.latency, fault)
    };

    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let (Some(route), Some(fault)) = (route, fault) {
        match fault {
            Fault::Delay(delay) => tokio::time::sleep(delay).await,
            Fault::EchoCredentials => {
                return Ok(reply::echo_credentials(route, &recorded).into_response())
            }
            fault => return Ok(reply::fault_reply(route, &fault).into_response()),
        }
    }

    let reply = {
        let mut state = shared.lock();
        dispatch(&mut state, route, &recorded, &body)
    };
    Ok(reply.into_response())
}

fn take_fault(state: &mut State, route: Route) -> Option<Fault> {
    let queue = state.faults.get_mut(&route)?;
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

fn dispatch(state: &mut State, route: Option<Route>, req: &RecordedRequest, body: &[u8]) -> Reply {
    let Some(route) = route else {
        return reply::not_found(&req.path);
    };
    if req.method != route.method() {
        return reply::method_not_allowed(route, &req.method);
    }
    let State {
        opts,
        acedata,
        yeastar,
        ..
    } = state;
    match route {
        Route::YeastarToken => yeastar.token(opts, body),
        Route::YeastarBalance => yeastar.balance(
            opts,
            req.authorization.as_deref(),
            req.user_agent.as_deref(),
        ),
        Route::AcedataLevels
        | Route::AcedataHistory
        | Route::AcedataApplications
        | Route::AcedataStatus
        | Route::AcedataStatusInit
        | Route::AcedataBalance => {
            let token = req.authorization.as_deref().and_then(bearer);
            let Some(account) = token.and_then(|t| acedata.get_mut(t)) else {
                return reply::acedata_unauthorized(token.is_none());
            };
            account.tick(opts);
            let is_list = matches!(
                route,
                Route::AcedataStatus
                    | Route::AcedataLevels
                    | Route::AcedataHistory
                    | Route::AcedataApplications
            );
            if is_list && opts.require_user_id && req.query_param("user_id").is_none() {
                return acedata::permission_denied();
            }
            let query = req.query.as_deref().unwrap_or("");
            match route {
                Route::AcedataBalance => account.balance(),
                Route::AcedataStatus => account.status(opts),
                Route::AcedataStatusInit => account.status_init(),
                Route::AcedataLevels => AcedataAccount::levels(opts),
                Route::AcedataApplications => account.applications_page(opts, query),
                _ => account.history(opts, query),
            }
        }
    }
}
