//! The HTTP side: `/` landing page, the telemetry path (cached bytes), `/-/healthy`,
//! `/-/ready`, `/-/reload`, `/status`; 404 for other paths, 405 for other methods.
//! Knows nothing of providers.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

mod body;
mod stall;

pub use body::{accepts_gzip, Body};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_ENCODING,
    CONTENT_LENGTH, CONTENT_TYPE, VARY, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::metrics::Exposition;
use crate::readiness::Readiness;
use crate::status::{page, StatusBoard};
use crate::web_config::WebConfigFile;

/// A reload request: the app answers on the enclosed channel.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers need.
pub struct ServerState {
    pub exposition: Arc<Exposition>,
    pub readiness: Arc<Readiness>,
    pub telemetry_path: String,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// `--web.enable-lifecycle`: without it `POST /-/reload` answers 403.
    pub enable_lifecycle: bool,
    /// TLS and basic auth (`--web.config.file`); `None` serves plain, open HTTP.
    pub web: Option<Arc<WebConfigFile>>,
    pub limits: ServerLimits,
    /// What `/status` shows.
    pub status: Arc<StatusBoard>,
}

/// Bounds that keep the server up under abuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and, with TLS, to finish the
    /// handshake); an idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; larger → 431.
    pub max_header_bytes: usize,
    /// Most header fields in a request; more → 431.
    pub max_headers: usize,
    /// Largest request body announced; larger → 413. No endpoint reads a body.
    pub max_body_bytes: u64,
    /// A response the client takes no byte of for this long is dropped, with its
    /// connection (see `stall.rs`).
    pub send_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 16 * 1024,
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// Time in-flight responses get to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serve on every listener until `shutdown` resolves, then stop accepting and let
/// in-flight responses finish (up to [`DRAIN_TIMEOUT`]). The connection limit holds
/// over all listeners together.
pub async fn serve(
    listeners: Vec<TcpListener>,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let limits = state.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let landing = Bytes::from(landing_page(&state.telemetry_path));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    tokio::pin!(shutdown);
    let mut turn = 0;
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept_any(&listeners, &mut turn) => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let stream = stall::SendDeadline::new(stream, limits.send_timeout);
        // The TLS settings in force when the connection arrives (certificates can
        // be rotated while running).
        let tls = state.web.as_ref().and_then(|w| w.current().tls().cloned());
        let state = state.clone();
        let landing = landing.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            let landing = landing.clone();
            async move { Ok::<_, Infallible>(route(req, &state, landing).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listeners);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("some connections did not finish within the drain timeout");
        }
    }
}

/// The next connection on any of `listeners`. The listener polled first moves round
/// (`turn`), so a busy address cannot starve the others.
async fn accept_any(
    listeners: &[TcpListener],
    turn: &mut usize,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    *turn = turn.wrapping_add(1);
    let first = *turn;
    std::future::poll_fn(|cx| {
        let n = listeners.len();
        for i in 0..n {
            if let std::task::Poll::Ready(r) = listeners[(first + i) % n].poll_accept(cx) {
                return std::task::Poll::Ready(r);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn landing_page(telemetry_path: &str) -> String {
    let path = crate::html::escape(telemetry_path);
    format!(
        "<!DOCTYPE html>\n<html><head><title>balance-exporter</title></head><body>\n\
         <h1>balance-exporter</h1>\n<p>Version {version}</p>\n\
         <ul><li><a href=\"{path}\">Metrics</a></li>\
         <li><a href=\"/status\">Status</a> of every collector</li>\
         <li><a href=\"/-/healthy\">Health</a></li>\
         <li><a href=\"/-/ready\">Readiness</a></li></ul>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn unauthorized() -> Response<Body> {
    let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"balance-exporter\""),
    );
    r
}

async fn route(req: Request<Incoming>, state: &ServerState, landing: Bytes) -> Response<Body> {
    // As in the exporter-toolkit, basic auth guards every path.
    if let Some(web) = &state.web {
        let web = web.current();
        let credentials = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
        if web.requires_auth() && !web.authorize(credentials).await {
            return unauthorized();
        }
    }
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > state.limits.max_body_bytes) {
        let mut r = text(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n");
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let path = req.uri().path();
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    if path == state.telemetry_path {
        if !get {
            return method_not_allowed("GET, HEAD");
        }
        return metrics(&req, state).await;
    }
    match path {
        "/" if get => response(StatusCode::OK, "text/html; charset=utf-8", landing),
        "/-/healthy" if get => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" if get => {
            if state.readiness.is_ready() {
                text(StatusCode::OK, "Ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not ready: first collection still running\n",
                )
            }
        }
        "/status" if get => status_page(&req, state),
        "/-/reload" if req.method() == Method::POST && !state.enable_lifecycle => text(
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled: start with --web.enable-lifecycle (SIGHUP reloads either way)\n",
        ),
        "/-/reload" if req.method() == Method::POST => reload(state).await,
        "/-/reload" => method_not_allowed("POST"),
        "/" | "/-/healthy" | "/-/ready" | "/status" => method_not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

/// `/status`: HTML, or JSON with `?format=json`; `?account=` and `?state=` filter.
fn status_page(req: &Request<Incoming>, state: &ServerState) -> Response<Body> {
    let query = match page::Query::parse(req.uri().query()) {
        Ok(q) => q,
        Err(problem) => {
            return response(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                Bytes::from(format!("{problem}\n")),
            )
        }
    };
    let snap = state.status.snapshot();
    let mut r = if query.json {
        response(
            StatusCode::OK,
            "application/json",
            Bytes::from(page::json(&page::filter(snap, &query))),
        )
    } else {
        response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from(page::html(snap, &query, &state.telemetry_path)),
        )
    };
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// The cached exposition, gzip-compressed when the request accepts it.
async fn metrics(req: &Request<Incoming>, state: &ServerState) -> Response<Body> {
    let gzip = req
        .headers()
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(accepts_gzip);
    let snapshot = state.exposition.current().await;
    let (body, len) = if gzip {
        (Body::parts(snapshot.gzip_parts()), snapshot.gzip_len())
    } else if let Some(plain) = snapshot.plain() {
        let len = plain.len();
        (Body::full(plain), len)
    } else {
        (
            Body::inflate(snapshot.plain_chunks(), snapshot.plain_len()),
            snapshot.plain_len(),
        )
    };
    let mut r = Response::new(body);
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

async fn reload(state: &ServerState) -> Response<Body> {
    let (tx, rx) = oneshot::channel();
    if state.reload.send(tx).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match rx.await {
        Ok(Ok(())) => text(StatusCode::OK, "configuration reloaded\n"),
        Ok(Err(e)) => response(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            Bytes::from(format!(
                "configuration rejected; the previous one keeps running\n{e}\n"
            )),
        ),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}
