//! The HTTP side: `/` landing page, the telemetry path (cached bytes), `/-/healthy`,
//! `/-/ready`, `/-/reload`; 404 for other paths, 405 for other methods. Knows
//! nothing of providers.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::metrics::Exposition;
use crate::scheduler::Readiness;

/// A reload request: the app answers on the enclosed channel.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers need.
pub struct ServerState {
    pub exposition: Arc<Exposition>,
    pub readiness: Arc<Readiness>,
    pub telemetry_path: String,
    pub reload: mpsc::Sender<ReloadRequest>,
}

/// Concurrent connections served at once; further ones wait in the backlog.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time a client has to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time in-flight responses get to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serve on `listener` until `shutdown` resolves, then stop accepting and let
/// in-flight responses finish (up to [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let landing = Bytes::from(landing_page(&state.telemetry_path));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let landing = landing.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            let landing = landing.clone();
            async move { Ok::<_, Infallible>(route(req, &state, landing).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(64 * 1024)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("some connections did not finish within the drain timeout");
        }
    }
}

fn landing_page(telemetry_path: &str) -> String {
    let path = html_escape(telemetry_path);
    format!(
        "<!DOCTYPE html>\n<html><head><title>balance-exporter</title></head><body>\n\
         <h1>balance-exporter</h1>\n<p>Version {version}</p>\n\
         <ul><li><a href=\"{path}\">Metrics</a></li>\
         <li><a href=\"/-/healthy\">Health</a></li>\
         <li><a href=\"/-/ready\">Readiness</a></li></ul>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

async fn route(
    req: Request<Incoming>,
    state: &ServerState,
    landing: Bytes,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    if path == state.telemetry_path {
        if !get {
            return method_not_allowed("GET, HEAD");
        }
        return response(
            StatusCode::OK,
            METRICS_CONTENT_TYPE,
            state.exposition.render(),
        );
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
        "/-/reload" if req.method() == Method::POST => reload(state).await,
        "/-/reload" => method_not_allowed("POST"),
        "/" | "/-/healthy" | "/-/ready" => method_not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

async fn reload(state: &ServerState) -> Response<Full<Bytes>> {
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
