//! The simulator driven over real HTTP with a plain client: the shared server here,
//! each vendor in its own file.

mod acedata;
mod yeastar;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::acedata::{parse_cents, APPLICATION_TOKEN_PREFIX};
use super::vendors::{DEMO_ACEDATA_TOKEN, DEMO_YEASTAR_CLIENT_ID, DEMO_YEASTAR_CLIENT_SECRET};
use super::*;

const TOKEN: &str = "platform-token";
const CLIENT_ID: &str = "client-id";
const CLIENT_SECRET: &str = "client-secret";

async fn sim(opts: SimOptions) -> Simulator {
    let sim = Simulator::start(opts).await.expect("simulator starts");
    sim.add_acedata_account(TOKEN);
    sim.add_yeastar_client(CLIENT_ID, CLIENT_SECRET);
    sim
}

/// The body parsed as JSON (the client is built without reqwest's `json` feature).
async fn json_body(resp: reqwest::Response) -> serde_json::Result<Value> {
    serde_json::from_slice(&resp.bytes().await.expect("body arrives"))
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn acedata(sim: &Simulator, method: &str, path_and_query: &str) -> (u16, Value) {
    acedata_as(sim, method, path_and_query, Some(TOKEN)).await
}

async fn acedata_as(
    sim: &Simulator,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let url = format!("{}{}", sim.base_url(), path_and_query);
    let mut req = match method {
        "POST" => client().post(url),
        _ => client().get(url),
    }
    .header("accept", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = req.send().await.expect("request succeeds");
    let status = resp.status().as_u16();
    let body = json_body(resp).await.expect("JSON body");
    (status, body)
}

async fn yeastar_token(sim: &Simulator, form: &[(&str, &str)]) -> Value {
    let resp = client()
        .post(format!("{}/auth/openapi/v1/oauth/token", sim.base_url()))
        .header("user-agent", "OpenAPI")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .send()
        .await
        .expect("request succeeds");
    assert_eq!(resp.status().as_u16(), 200, "token errors are HTTP 200 too");
    json_body(resp).await.expect("JSON body")
}

async fn yeastar_balance(
    sim: &Simulator,
    token: Option<&str>,
    user_agent: Option<&str>,
) -> (u16, Value) {
    let mut req = client().get(format!(
        "{}/user/openapi/user/v1/client/account_balance",
        sim.base_url()
    ));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(ua) = user_agent {
        req = req.header("user-agent", ua);
    }
    let resp = req.send().await.expect("request succeeds");
    let status = resp.status().as_u16();
    (status, json_body(resp).await.expect("JSON body"))
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

/// The same keys at every level, recursively (arrays compared by their first element).
fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(x), Some(y)) => same_shape(x, y),
            _ => true,
        },
        (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    let sim = sim(SimOptions::default()).await;
    let (status, _) = acedata(&sim, "GET", "/api/v1/balances/initialize/").await;
    assert_eq!(status, 405);
    let (status, _) = acedata(&sim, "GET", "/api/v1/distribution-levels").await;
    assert_eq!(status, 404, "Ace Data Cloud paths end with a slash");
    assert_eq!(sim.request_count(Route::AcedataBalance), 1);
    assert_eq!(sim.total_requests(), 2);
}

async fn raw(sim: &Simulator, route: Route) -> reqwest::Response {
    let url = format!("{}{}", sim.base_url(), route.path());
    let req = if route.method() == "POST" {
        client().post(url)
    } else {
        client().get(url)
    };
    let token = if route.vendor() == "yeastar" {
        "static"
    } else {
        TOKEN
    };
    req.header("authorization", format!("Bearer {token}"))
        .header("user-agent", "OpenAPI")
        .send()
        .await
        .expect("request succeeds")
}

#[tokio::test]
async fn faults_on_every_route() {
    let sim = sim(SimOptions::default()).await;
    sim.add_yeastar_static_token("static");
    for route in Route::all() {
        let normal = raw(&sim, route).await.status().as_u16();
        assert_eq!(normal, 200, "{route:?}");

        sim.inject_fault(route, Fault::Status(503), Some(1));
        let resp = raw(&sim, route).await;
        assert_eq!(resp.status().as_u16(), 503);
        let body: Value = json_body(resp).await.expect("JSON error body");
        if route.vendor() == "yeastar" {
            assert_eq!(body["status"], 503);
            assert_ne!(body["code"], "success");
        } else {
            assert!(body["error"]["message"].is_string() || body["detail"].is_string());
        }
        assert_eq!(
            raw(&sim, route).await.status().as_u16(),
            200,
            "one time only"
        );

        sim.inject_fault(
            route,
            Fault::RateLimited {
                retry_after: Some(7),
            },
            Some(1),
        );
        let resp = raw(&sim, route).await;
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");

        sim.inject_fault(route, Fault::RateLimited { retry_after: None }, Some(1));
        let resp = raw(&sim, route).await;
        assert_eq!(resp.status().as_u16(), 429);
        assert!(resp.headers().get("retry-after").is_none());

        sim.inject_fault(route, Fault::MalformedJson, Some(1));
        let resp = raw(&sim, route).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert!(serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).is_err());

        sim.inject_fault(route, Fault::WrongTypes, Some(1));
        let resp = raw(&sim, route).await;
        assert_eq!(resp.status().as_u16(), 200);
        let _: Value = json_body(resp).await.expect("well-formed JSON");

        sim.inject_fault(route, Fault::Html, Some(1));
        let resp = raw(&sim, route).await;
        assert_eq!(resp.status().as_u16(), 502);
        assert_eq!(resp.headers()["content-type"], "text/html");

        sim.inject_fault(route, Fault::EmptyBody, Some(1));
        let resp = raw(&sim, route).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.bytes().await.unwrap().is_empty());

        sim.inject_fault(route, Fault::HugeBody(3 << 20), Some(1));
        let resp = raw(&sim, route).await;
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(bytes.len(), 3 << 20);
        let _: Value = serde_json::from_slice(&bytes).expect("huge but valid JSON");

        sim.inject_fault(route, Fault::ApiError, Some(1));
        let resp = raw(&sim, route).await;
        if route.vendor() == "yeastar" {
            assert_eq!(resp.status().as_u16(), 200);
            let body: Value = json_body(resp).await.unwrap();
            assert_ne!(body["code"], "success");
        } else {
            assert_eq!(resp.status().as_u16(), 400);
            let body: Value = json_body(resp).await.unwrap();
            assert!(body["error"]["code"].is_string());
        }

        sim.inject_fault(route, Fault::Delay(Duration::from_millis(200)), Some(1));
        let started = Instant::now();
        assert_eq!(raw(&sim, route).await.status().as_u16(), 200);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}

#[tokio::test]
async fn wrong_types_are_wrong() {
    let sim = sim(SimOptions::default()).await;
    sim.add_yeastar_static_token("static");
    sim.inject_fault(Route::AcedataBalance, Fault::WrongTypes, None);
    sim.inject_fault(Route::YeastarBalance, Fault::WrongTypes, None);
    let body: Value = json_body(raw(&sim, Route::AcedataBalance).await)
        .await
        .unwrap();
    assert!(body["credits"].is_object());
    let body: Value = json_body(raw(&sim, Route::YeastarBalance).await)
        .await
        .unwrap();
    assert_eq!(body["result"]["accountBalance"], "abc");
}

#[tokio::test]
async fn faults_persist_queue_and_clear() {
    let sim = sim(SimOptions::default()).await;
    sim.inject_fault(Route::AcedataLevels, Fault::Status(500), Some(2));
    sim.inject_fault(Route::AcedataLevels, Fault::Status(401), None);
    let statuses = [
        raw(&sim, Route::AcedataLevels).await.status().as_u16(),
        raw(&sim, Route::AcedataLevels).await.status().as_u16(),
        raw(&sim, Route::AcedataLevels).await.status().as_u16(),
        raw(&sim, Route::AcedataLevels).await.status().as_u16(),
    ];
    assert_eq!(statuses, [500, 500, 401, 401]);
    assert_eq!(
        raw(&sim, Route::AcedataHistory).await.status().as_u16(),
        200
    );
    sim.clear_faults();
    assert_eq!(raw(&sim, Route::AcedataLevels).await.status().as_u16(), 200);
    assert_eq!(sim.request_count(Route::AcedataLevels), 5);
    assert_eq!(sim.request_count(Route::AcedataHistory), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_peak_concurrency() {
    let sim = sim(SimOptions {
        latency: Duration::from_millis(100),
        ..SimOptions::default()
    })
    .await;
    let tokens: Vec<String> = (0..50).map(|i| format!("token-{i}")).collect();
    for token in &tokens {
        sim.add_acedata_account(token);
    }
    let started = Instant::now();
    let calls = tokens.iter().map(|token| {
        let sim = sim.clone();
        let token = token.clone();
        async move {
            acedata_as(&sim, "POST", "/api/v1/balances/initialize/", Some(&token))
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(sim.request_count(Route::AcedataBalance), 50);
    assert!(sim.max_in_flight() >= 10, "peak {}", sim.max_in_flight());
    assert_eq!(sim.in_flight(), 0);

    sim.reset_counters();
    assert_eq!(sim.request_count(Route::AcedataBalance), 0);
    assert_eq!(sim.max_in_flight(), 0);
    assert!(sim.request_log().is_empty());
}

#[tokio::test]
async fn drift_moves_values() {
    let sim = sim(SimOptions {
        drift: true,
        history_interval: Duration::from_millis(100),
        ..SimOptions::default()
    })
    .await;
    sim.add_yeastar_static_token("static");
    let (_, before_status) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
    let (_, before_history) = acedata(&sim, "GET", "/api/v1/distribution-histories/?limit=1").await;
    // Credits fall by 0.05 a second and a record appears every 100 ms: poll until
    // both have moved.
    let balance = eventually(|| async {
        let (_, balance) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
        let credits: f64 = balance["credits"].as_str().unwrap().parse().unwrap();
        (credits < 100.0).then_some(balance)
    })
    .await;
    let credits: f64 = balance["credits"].as_str().unwrap().parse().unwrap();
    assert!(credits > 99.0, "{credits}");
    assert_eq!(
        balance["credits"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .len(),
        2
    );
    let before = before_history["count"].as_u64().unwrap();
    eventually(|| async {
        let (_, history) = acedata(&sim, "GET", "/api/v1/distribution-histories/?limit=1").await;
        (history["count"].as_u64().unwrap() > before).then_some(())
    })
    .await;
    let (_, status) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
    assert!(status["results"][0]["price"].as_f64() > before_status["results"][0]["price"].as_f64());

    // One cent left, then no request for longer than two cents take to drift away:
    // the next answer applies all of it at once, and stops at zero. (This wait is
    // the input, not a guess: a sleep is never shorter than asked, and longer only
    // drifts further.)
    sim.set_credits(TOKEN, "0.01");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, balance) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
    assert_eq!(balance["credits"], "0.00", "never below zero");
}

/// Poll `f` every 10 ms until it returns `Some`; panics after a minute.
async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "the condition never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn demo_serves_the_demo_accounts() {
    let sim = Simulator::start_demo(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let (status, balance) = acedata_as(
        &sim,
        "POST",
        "/api/v1/balances/initialize/",
        Some(DEMO_ACEDATA_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(balance["packages"].as_array().unwrap().len(), 2);
    let (_, history) = acedata_as(
        &sim,
        "GET",
        "/api/v1/distribution-histories/?limit=100",
        Some(DEMO_ACEDATA_TOKEN),
    )
    .await;
    assert_eq!(history["count"], 25);
    let invalid = history["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["invalid"] == true)
        .count();
    assert!(invalid > 0 && invalid < 25);

    let body = yeastar_token(
        &sim,
        &[
            ("client_id", DEMO_YEASTAR_CLIENT_ID),
            ("client_secret", DEMO_YEASTAR_CLIENT_SECRET),
            ("grant_type", "pp_credentials"),
        ],
    )
    .await;
    assert_eq!(body["code"], "success");
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sim = sim(SimOptions::default()).await;
    let url = format!("{}/api/v1/distribution-levels/", sim.base_url());
    assert!(client().get(&url).send().await.is_ok());
    sim.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(&url).send().await.is_err());
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let sim = sim(SimOptions::default()).await;
    let url = format!("{}/api/v1/distribution-levels/", sim.base_url());
    let clone = sim.clone();
    drop(sim);
    assert!(
        client().get(&url).send().await.is_ok(),
        "a clone keeps it up"
    );
    drop(clone);
    // The server task notices and closes its listener; wait for that, not a guess.
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::Client::new().get(&url).send().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still serving after the last handle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_accounts_at_once() {
    let sim = sim(SimOptions {
        latency: Duration::from_millis(50),
        ..SimOptions::default()
    })
    .await;
    let tokens: Vec<String> = (0..1000).map(|i| format!("bench-{i}")).collect();
    for token in &tokens {
        sim.add_acedata_account(token);
    }
    let http = client();
    let calls = tokens.iter().map(|token| {
        let req = http
            .get(format!(
                "{}/api/v1/distribution-histories/?limit=100",
                sim.base_url()
            ))
            .header("authorization", format!("Bearer {token}"));
        async move { req.send().await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| matches!(s, Ok(200))));
    assert_eq!(sim.request_count(Route::AcedataHistory), 1000);
    // Answered concurrently (one at a time, the peak would be 1): a count, not a
    // wall-clock bound, so a loaded machine does not fail it.
    assert!(sim.max_in_flight() >= 50, "peak {}", sim.max_in_flight());
}
