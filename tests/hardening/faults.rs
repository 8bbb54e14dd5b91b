//! Every upstream fault: its `reason`, whether it is retried, and that retries stay
//! inside the attempt's deadline.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use balance_exporter::collector::CollectError;
use balance_exporter::simulator::{Fault, Route};
use balance_exporter::upstream::{Upstream, UpstreamOptions};

use crate::support::*;

const BUDGET: Duration = Duration::from_secs(2);
/// Scheduling slack on a loaded 2-core machine: an attempt may end this much after its
/// deadline before the test calls it an overrun. Generous, yet below what an attempt
/// that ignored its deadline would take in every test here (a 5 s delay, a body that
/// takes 100 s, a connect that never completes).
const SLACK: Duration = Duration::from_millis(2500);

/// Run one `acedata_balance` attempt against `base_url`.
async fn balance_attempt(base_url: &str) -> (Result<(), CollectError>, Duration) {
    let upstream = fast_upstream();
    let mut c = collector(base_url, "acedata_balance", &upstream);
    attempt(&mut c, BUDGET).await
}

fn reason(r: &Result<(), CollectError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(e) => e.reason(),
    }
}

#[tokio::test]
async fn connection_refused_is_connect_and_retried_within_the_budget() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (r, took) = balance_attempt(&format!("http://127.0.0.1:{port}")).await;
    assert_eq!(reason(&r), "connect", "{r:?}");
    assert!(took <= BUDGET + SLACK, "took {took:?}");
    // Four tries with 10..20 + 20..40 + 40..80 ms of backoff in between.
    assert!(took >= Duration::from_millis(70), "no backoff: {took:?}");
}

struct NoDns;

impl reqwest::dns::Resolve for NoDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            Err(Box::<dyn std::error::Error + Send + Sync>::from(format!(
                "failed to lookup address information: {name}: Name or service not known"
            )))
        })
    }
}

#[tokio::test]
async fn dns_failure_is_connect() {
    // A resolver that fails like a missing name: no query leaves the machine.
    let upstream = Upstream::with_options(UpstreamOptions {
        retry: FAST_RETRY,
        resolver: Some(std::sync::Arc::new(NoDns)),
        ..UpstreamOptions::default()
    });
    let mut c = collector("http://upstream.invalid", "acedata_balance", &upstream);
    let (r, _) = attempt(&mut c, BUDGET).await;
    assert_eq!(reason(&r), "connect", "{r:?}");
    assert!(r.unwrap_err().to_string().contains("upstream.invalid"));
}

#[tokio::test]
async fn connect_timeout_is_timeout() {
    // A listener that never accepts, with its backlog full: further SYNs are dropped
    // and the connection attempt hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let (r, took) = balance_attempt(&format!("http://{addr}")).await;
    assert_eq!(reason(&r), "timeout", "{r:?}");
    assert!(took <= BUDGET + SLACK, "took {took:?}");
    drop(listener);
}

#[tokio::test]
async fn read_timeout_is_timeout_and_retries_stop_at_the_deadline() {
    let sim = simulator().await;
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::Delay(Duration::from_secs(5)),
        None,
    );
    let (r, took) = balance_attempt(&sim.base_url()).await;
    assert_eq!(reason(&r), "timeout", "{r:?}");
    // 300 ms per try, retried while a try still fits in the 2 s budget.
    assert!(took <= BUDGET + SLACK, "took {took:?}");
    let tries = sim.request_count(Route::AcedataBalance);
    assert!((2..=4).contains(&tries), "{tries} tries");
}

#[tokio::test]
async fn slow_body_is_timeout() {
    let (addr, _) = raw_server(Raw::SlowBody).await;
    let (r, took) = balance_attempt(&format!("http://{addr}")).await;
    assert_eq!(reason(&r), "timeout", "{r:?}");
    assert!(took <= BUDGET + SLACK, "took {took:?}");
}

#[tokio::test]
async fn server_errors_are_http_status_and_retried() {
    let sim = simulator().await;
    sim.inject_fault(Route::AcedataBalance, Fault::Status(503), None);
    let (r, _) = balance_attempt(&sim.base_url()).await;
    assert_eq!(reason(&r), "http_status", "{r:?}");
    assert_eq!(
        sim.request_count(Route::AcedataBalance),
        4,
        "every try used"
    );

    // A transient 500 is absorbed by one retry.
    let sim = simulator().await;
    sim.inject_fault(Route::AcedataBalance, Fault::Status(500), Some(1));
    let (r, _) = balance_attempt(&sim.base_url()).await;
    assert_eq!(reason(&r), "ok", "{r:?}");
    assert_eq!(sim.request_count(Route::AcedataBalance), 2);
}

#[tokio::test]
async fn html_error_page_is_http_status_with_a_short_detail() {
    let sim = simulator().await;
    sim.inject_fault(Route::AcedataBalance, Fault::Html, None);
    let (r, _) = balance_attempt(&sim.base_url()).await;
    let e = r.unwrap_err();
    assert_eq!(e.reason(), "http_status");
    assert!(e.to_string().contains("502 Bad Gateway"), "{e}");

    // An HTML page with status 200 (a captive portal, a misrouted proxy).
    let (addr, _) = raw_server(Raw::Fixed {
        status: 200,
        content_type: "text/html",
        body: "<html><body>Please log in</body></html>".into(),
    })
    .await;
    let (r, _) = balance_attempt(&format!("http://{addr}")).await;
    assert_eq!(reason(&r), "decode", "{r:?}");
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_honoured() {
    let sim = simulator().await;
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::RateLimited {
            retry_after: Some(1),
        },
        Some(1),
    );
    let (r, took) = balance_attempt(&sim.base_url()).await;
    assert_eq!(reason(&r), "ok", "{r:?}");
    assert!(took >= Duration::from_secs(1), "retried after {took:?}");
    assert_eq!(sim.request_count(Route::AcedataBalance), 2);
}

#[tokio::test]
async fn rate_limit_longer_than_the_budget_is_not_retried_and_carries_the_wait() {
    let sim = simulator().await;
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::RateLimited {
            retry_after: Some(30),
        },
        None,
    );
    let (r, took) = balance_attempt(&sim.base_url()).await;
    let e = r.unwrap_err();
    assert_eq!(e.reason(), "rate_limited");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    // Waiting would run into the 2 s deadline.
    assert!(took < Duration::from_millis(1500), "waited {took:?}");
    assert_eq!(sim.request_count(Route::AcedataBalance), 1, "never hammer");
}

#[tokio::test]
async fn rate_limit_without_retry_after_backs_off() {
    let sim = simulator().await;
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::RateLimited { retry_after: None },
        None,
    );
    let (r, took) = balance_attempt(&sim.base_url()).await;
    assert_eq!(reason(&r), "rate_limited", "{r:?}");
    assert_eq!(sim.request_count(Route::AcedataBalance), 4);
    assert!(took >= Duration::from_millis(70), "no backoff: {took:?}");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for (status, expected) in [
        (401, "unauthorized"),
        (403, "http_status"),
        (404, "http_status"),
    ] {
        let sim = simulator().await;
        sim.inject_fault(Route::AcedataBalance, Fault::Status(status), None);
        let (r, _) = balance_attempt(&sim.base_url()).await;
        assert_eq!(reason(&r), expected, "{status}: {r:?}");
        assert_eq!(sim.request_count(Route::AcedataBalance), 1, "{status}");
    }
    // A vendor error (400 with {"error": …}) is not retried either.
    let sim = simulator().await;
    sim.inject_fault(Route::AcedataBalance, Fault::ApiError, None);
    let (r, _) = balance_attempt(&sim.base_url()).await;
    assert_eq!(reason(&r), "http_status", "{r:?}");
    assert_eq!(sim.request_count(Route::AcedataBalance), 1);
}

#[tokio::test]
async fn bad_bodies_are_decode_errors_and_not_retried() {
    for fault in [Fault::EmptyBody, Fault::MalformedJson, Fault::WrongTypes] {
        let sim = simulator().await;
        sim.inject_fault(Route::AcedataBalance, fault.clone(), None);
        let (r, _) = balance_attempt(&sim.base_url()).await;
        assert_eq!(reason(&r), "decode", "{fault:?}: {r:?}");
        assert_eq!(sim.request_count(Route::AcedataBalance), 1, "{fault:?}");
    }
}

#[tokio::test]
async fn numeric_strings_that_are_not_numbers_are_decode_errors_never_zero() {
    for credits in [
        "NaN", "Infinity", "1.2.3", "12,50", "", " ", "0x10", "1e999",
    ] {
        let (addr, _) = raw_server(Raw::Fixed {
            status: 200,
            content_type: "application/json",
            body: format!(r#"{{"credits": "{credits}", "packages": []}}"#),
        })
        .await;
        let (r, _) = balance_attempt(&format!("http://{addr}")).await;
        assert_eq!(reason(&r), "decode", "credits {credits:?}: {r:?}");
    }
}

#[tokio::test]
async fn yeastar_faults_map_like_any_other() {
    let sim = simulator().await;
    let upstream = fast_upstream();
    let mut c = collector(&sim.base_url(), "yeastar_balance", &upstream);
    assert_eq!(reason(&attempt(&mut c, BUDGET).await.0), "ok");
    for (fault, expected) in [
        (Fault::ApiError, "api_error"),
        (Fault::WrongTypes, "decode"),
        (Fault::MalformedJson, "decode"),
        (Fault::Status(403), "http_status"),
        (Fault::Html, "http_status"),
        (Fault::RateLimited { retry_after: None }, "rate_limited"),
    ] {
        sim.clear_faults();
        sim.inject_fault(Route::YeastarBalance, fault.clone(), None);
        let (r, _) = attempt(&mut c, BUDGET).await;
        assert_eq!(reason(&r), expected, "{fault:?}: {r:?}");
    }
}

#[tokio::test]
async fn yeastar_401_renews_the_token_and_retries_once() {
    let sim = simulator().await;
    let upstream = fast_upstream();
    let mut c = collector(&sim.base_url(), "yeastar_balance", &upstream);
    assert_eq!(reason(&attempt(&mut c, BUDGET).await.0), "ok");
    sim.expire_yeastar_tokens();
    sim.reset_counters();
    assert_eq!(reason(&attempt(&mut c, BUDGET).await.0), "ok");
    assert_eq!(sim.request_count(Route::YeastarBalance), 2);
    assert_eq!(sim.request_count(Route::YeastarToken), 1);

    // A 401 that persists after the renewal is reported, not retried again.
    sim.reset_counters();
    sim.inject_fault(Route::YeastarBalance, Fault::Status(401), None);
    let (r, _) = attempt(&mut c, BUDGET).await;
    assert_eq!(reason(&r), "unauthorized", "{r:?}");
    assert_eq!(sim.request_count(Route::YeastarBalance), 2);
}

#[tokio::test]
async fn body_over_the_cap_is_decode() {
    let sim = simulator().await;
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::HugeBody(TEST_BODY_CAP * 4),
        None,
    );
    let (r, _) = balance_attempt(&sim.base_url()).await;
    let e = r.unwrap_err();
    assert_eq!(e.reason(), "decode");
    assert!(e.to_string().contains("cap"), "{e}");
}

#[tokio::test]
async fn endless_body_stops_at_the_cap() {
    // Without a cap this would read until the timeout (and grow without bound).
    let (addr, accepted) = raw_server(Raw::Endless).await;
    let (r, took) = balance_attempt(&format!("http://{addr}")).await;
    let e = r.unwrap_err();
    assert_eq!(e.reason(), "decode", "{e}");
    assert!(e.to_string().contains("cap"), "{e}");
    assert!(took <= BUDGET + SLACK, "read until {took:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn history_faults_leave_the_aggregates_alone() {
    let sim = simulator().await;
    let upstream = fast_upstream();
    let mut c = collector(&sim.base_url(), "acedata_distribution_history", &upstream);
    assert_eq!(reason(&attempt(&mut c, BUDGET).await.0), "ok");
    for fault in [Fault::MalformedJson, Fault::WrongTypes, Fault::EmptyBody] {
        sim.clear_faults();
        sim.inject_fault(Route::AcedataHistory, fault.clone(), None);
        let (r, _) = attempt(&mut c, BUDGET).await;
        assert_eq!(reason(&r), "decode", "{fault:?}: {r:?}");
    }
    sim.clear_faults();
    assert_eq!(reason(&attempt(&mut c, BUDGET).await.0), "ok");
}
