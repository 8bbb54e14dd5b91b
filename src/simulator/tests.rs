//! The simulator driven over real HTTP with a plain client.

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
async fn balance_is_the_seed_document() {
    let sim = sim(SimOptions::default()).await;
    let (status, body) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
            "user_id": "user-uuid",
            "credits": "100.00",
            "packages": [
                { "id": "pkg-uuid", "name": "Basic Package", "amount": 100, "price": "9.90" }
            ],
            "created_at": "2024-01-15T10:30:00Z",
            "updated_at": "2024-01-15T10:30:00Z"
        })
    );

    sim.set_credits(TOKEN, "123.4");
    let (_, body) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
    assert_eq!(body["credits"], "123.40");
    sim.set_credits(TOKEN, "0.05");
    let (_, body) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
    assert_eq!(body["credits"], "0.05");
}

#[tokio::test]
async fn distribution_status_and_levels_are_the_seed_documents() {
    let sim = sim(SimOptions::default()).await;
    let (status, body) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "count": 1,
            "results": [{
                "id": "status-uuid",
                "user_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
                "level": { "id": "level-1-uuid", "level": 1, "threshold": 0, "percentage": 0.1 },
                "price": 500.0,
                "reward": 50.0,
                "tags": null,
                "metadata": null,
                "created_at": "2024-01-01T00:00:00.000000Z",
                "updated_at": "2024-08-01T00:00:00.000000Z"
            }]
        })
    );

    let (status, body) = acedata(&sim, "GET", "/api/v1/distribution-levels/").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "count": 3,
            "results": [
                { "id": "level-1-uuid", "level": 1, "threshold": 0, "percentage": 0.1, "tags": null, "metadata": null },
                { "id": "level-2-uuid", "level": 2, "threshold": 1000, "percentage": 0.15, "tags": null, "metadata": null },
                { "id": "level-3-uuid", "level": 3, "threshold": 5000, "percentage": 0.2, "tags": null, "metadata": null }
            ]
        })
    );

    sim.set_distribution_price(TOKEN, 1234.56);
    let (_, body) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
    assert_eq!(body["results"][0]["price"], 1234.56);
    assert_eq!(body["results"][0]["level"]["level"], 2);
    assert_eq!(body["results"][0]["level"]["percentage"], 0.15);
}

#[tokio::test]
async fn uninitialized_status_is_created_by_initialize() {
    let sim = sim(SimOptions {
        status_initialized: false,
        ..SimOptions::default()
    })
    .await;
    let (_, body) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
    assert_eq!(body, json!({ "count": 0, "results": [] }));

    let (status, created) =
        acedata(&sim, "POST", "/api/v1/distribution-statuses/initialize/").await;
    assert_eq!(status, 200);
    assert_eq!(created["level"]["level"], 1);
    assert_eq!(created["price"], 500.0);

    let (_, body) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
    assert_eq!(body["count"], 1);
    assert_eq!(body["results"][0], created);
    assert_eq!(sim.request_count(Route::AcedataStatus), 2);
    assert_eq!(sim.request_count(Route::AcedataStatusInit), 1);
}

#[tokio::test]
async fn history_records_have_the_seed_shape() {
    let sim = sim(SimOptions {
        history_records: 1,
        ..SimOptions::default()
    })
    .await;
    let (status, body) = acedata(&sim, "GET", "/api/v1/distribution-histories/").await;
    assert_eq!(status, 200);
    let seed = json!({
        "id": "history-uuid",
        "user_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
        "inviter_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
        "invitee_id": "new-user-uuid",
        "order_id": "order-uuid",
        "percentage": 0.1,
        "reward": 5.0,
        "invalid": false,
        "order": { "id": "order-uuid", "price": 50.0, "state": "Finished" },
        "invitee": { "id": "new-user-uuid", "nickname": "New User" },
        "tags": null,
        "metadata": null,
        "created_at": "2024-08-01T10:00:00.000000Z"
    });
    assert_eq!(body["count"], 1);
    let record = &body["results"][0];
    assert!(same_shape(record, &seed), "{record}");
    for key in [
        "user_id",
        "inviter_id",
        "percentage",
        "reward",
        "invalid",
        "tags",
        "metadata",
        "created_at",
    ] {
        assert_eq!(record[key], seed[key], "{key}");
    }
    assert_eq!(record["order"]["price"], 50.0);
    assert_eq!(record["order"]["state"], "Finished");
    assert_eq!(record["order"]["id"], record["order_id"]);
    assert_eq!(record["invitee"]["id"], record["invitee_id"]);
    assert_eq!(record["invitee"]["nickname"], "New User");
}

async fn all_pages(sim: &Simulator, key: &str, limit: usize) -> (usize, Vec<Value>) {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let (status, body) = acedata(
            sim,
            "GET",
            &format!("/api/v1/distribution-histories/?limit={limit}&offset={offset}"),
        )
        .await;
        assert_eq!(status, 200);
        let page = body[key]
            .as_array()
            .expect("page under the list key")
            .clone();
        let count = body["count"].as_u64().unwrap() as usize;
        offset += page.len();
        let done = page.is_empty() || offset >= count;
        records.extend(page);
        if done {
            return (count, records);
        }
    }
}

#[tokio::test]
async fn history_pages_in_both_orders_and_both_list_keys() {
    for (order, list_key, key) in [
        (HistoryOrder::NewestFirst, ListKey::Results, "results"),
        (HistoryOrder::OldestFirst, ListKey::Results, "results"),
        (HistoryOrder::NewestFirst, ListKey::Items, "items"),
        (HistoryOrder::OldestFirst, ListKey::Items, "items"),
    ] {
        let sim = sim(SimOptions {
            history_order: order,
            list_key,
            ..SimOptions::default()
        })
        .await;
        let (count, records) = all_pages(&sim, key, 7).await;
        assert_eq!(count, 20);
        assert_eq!(records.len(), 20);
        assert_eq!(sim.request_count(Route::AcedataHistory), 3);
        let ids: HashSet<_> = records.iter().map(|r| r["id"].to_string()).collect();
        assert_eq!(ids.len(), 20, "ids are unique");
        let times: Vec<&str> = records
            .iter()
            .map(|r| r["created_at"].as_str().unwrap())
            .collect();
        let mut sorted = times.clone();
        sorted.sort_unstable();
        if order == HistoryOrder::NewestFirst {
            sorted.reverse();
        }
        assert_eq!(times, sorted, "{order:?}");
        let invalid = records.iter().filter(|r| r["invalid"] == true).count();
        assert_eq!(invalid, 3);
        let reward_cents: i64 = records
            .iter()
            .map(|r| (r["reward"].as_f64().unwrap() * 100.0).round() as i64)
            .sum();
        assert!(reward_cents % 10 != 0, "rewards carry cents");

        // Lists endpoints honour the list key too.
        let (_, levels) = acedata(&sim, "GET", "/api/v1/distribution-levels/").await;
        assert_eq!(levels[key].as_array().unwrap().len(), 3);
        let (_, status) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
        assert_eq!(status[key].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn history_limit_and_offset_edges() {
    let sim = sim(SimOptions {
        max_page_size: Some(8),
        ..SimOptions::default()
    })
    .await;
    let page = |q: &'static str| {
        let sim = sim.clone();
        async move {
            let (_, body) =
                acedata(&sim, "GET", &format!("/api/v1/distribution-histories/{q}")).await;
            (
                body["count"].as_u64().unwrap(),
                body["results"].as_array().unwrap().len(),
            )
        }
    };
    assert_eq!(page("").await, (20, 8), "default 10 capped at 8");
    assert_eq!(page("?limit=5").await, (20, 5));
    assert_eq!(page("?limit=5&offset=18").await, (20, 2));
    assert_eq!(page("?limit=5&offset=20").await, (20, 0));
    assert_eq!(page("?limit=5&offset=999").await, (20, 0));
    assert_eq!(page("?limit=100").await, (20, 8));
    assert_eq!(page("?limit=abc").await, (20, 8));

    sim.update_options(|o| o.max_page_size = None);
    assert_eq!(page("").await, (20, 10));
    assert_eq!(page("?limit=100").await, (20, 20));

    // Newest first: a new record shows at offset 0 and shifts the rest.
    let (_, before) = acedata(&sim, "GET", "/api/v1/distribution-histories/?limit=1").await;
    let id = sim.add_history_record(TOKEN, 12.35, 123.5, false);
    let (_, after) = acedata(&sim, "GET", "/api/v1/distribution-histories/?limit=2").await;
    assert_eq!(after["count"], 21);
    assert_eq!(after["results"][0]["id"], id.as_str());
    assert_eq!(after["results"][0]["reward"], 12.35);
    assert_eq!(after["results"][0]["order"]["price"], 123.5);
    assert_eq!(after["results"][1], before["results"][0]);

    // Index 0 is the oldest record, the last one at offset 20 newest-first.
    sim.set_history_invalid(TOKEN, 0, true);
    let (_, oldest) = acedata(&sim, "GET", "/api/v1/distribution-histories/?offset=20").await;
    assert_eq!(oldest["results"][0]["invalid"], true);
    assert_eq!(
        oldest["results"][0]["created_at"],
        "2024-08-01T10:00:00.000000Z"
    );
}

#[tokio::test]
async fn acedata_auth_and_user_id() {
    let sim = sim(SimOptions {
        require_user_id: true,
        ..SimOptions::default()
    })
    .await;
    let (status, body) = acedata_as(&sim, "POST", "/api/v1/balances/initialize/", None).await;
    assert_eq!(status, 401);
    assert!(body["detail"].is_string());
    let (status, body) =
        acedata_as(&sim, "GET", "/api/v1/distribution-levels/", Some("nope")).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({ "detail": "Invalid token." }));

    let (status, body) = acedata(&sim, "GET", "/api/v1/distribution-histories/?limit=5").await;
    assert_eq!(status, 403);
    assert_eq!(
        body["detail"],
        "You do not have permission to perform this action."
    );
    let (status, _) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
    assert_eq!(status, 403);
    let (status, _) = acedata(&sim, "GET", "/api/v1/distribution-levels/?user_id=me").await;
    assert_eq!(status, 200);
    let (status, _) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
    assert_eq!(status, 200, "the balance is not a list");
    let last = sim.last_request(Route::AcedataLevels).unwrap();
    assert_eq!(last.query_param("user_id").as_deref(), Some("me"));
    assert_eq!(last.authorization.as_deref(), Some("Bearer platform-token"));

    // Each token is its own account.
    sim.add_acedata_account("other");
    sim.set_credits("other", "1.00");
    let (_, own) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
    let (_, other) = acedata_as(&sim, "POST", "/api/v1/balances/initialize/", Some("other")).await;
    assert_eq!(own["credits"], "100.00");
    assert_eq!(other["credits"], "1.00");
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

#[tokio::test]
async fn yeastar_token_exchange_and_balance() {
    let sim = sim(SimOptions::default()).await;
    let body = yeastar_token(
        &sim,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("grant_type", "pp_credentials"),
        ],
    )
    .await;
    assert_eq!(body["code"], "success");
    assert_eq!(body["detailMessage"], "");
    assert_eq!(body["status"], 200);
    assert_eq!(body["requestId"].as_str().unwrap().len(), 32);
    assert_eq!(body["result"]["expiresIn"], "1800");
    assert_eq!(body["result"]["tokenHead"], "Bearer ");
    let token = body["result"]["token"].as_str().unwrap();
    assert!(body["result"]["refreshToken"].is_string());
    let last = sim.last_request(Route::YeastarToken).unwrap();
    assert_eq!(
        last.form_param("grant_type").as_deref(),
        Some("pp_credentials")
    );

    let (status, body) = yeastar_balance(&sim, Some(token), Some("OpenAPI")).await;
    assert_eq!(status, 200);
    assert_eq!(
        without(body, "requestId"),
        json!({ "code": "success", "detailMessage": "", "result": { "accountBalance": 675.24 }, "status": 200 })
    );
    assert_eq!(
        sim.last_user_agent(Route::YeastarBalance).as_deref(),
        Some("OpenAPI")
    );

    sim.set_yeastar_balance(CLIENT_ID, 12.5);
    let (_, body) = yeastar_balance(&sim, Some(token), Some("balance-exporter/0.1")).await;
    assert_eq!(body["result"]["accountBalance"], 12.5);

    let (status, body) = yeastar_balance(&sim, Some(token), None).await;
    assert_eq!(status, 400);
    assert_ne!(body["code"], "success");
    assert_eq!(sim.last_user_agent(Route::YeastarBalance), None);

    let (status, body) = yeastar_balance(&sim, Some("unknown"), Some("OpenAPI")).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "access_token_invalid");
    assert_eq!(body["status"], 401);
    assert_eq!(body["result"], Value::Null);
    let (status, _) = yeastar_balance(&sim, None, Some("OpenAPI")).await;
    assert_eq!(status, 401);

    sim.add_yeastar_static_token("static");
    sim.set_yeastar_balance("static", 1.0);
    let (status, body) = yeastar_balance(&sim, Some("static"), Some("OpenAPI")).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["accountBalance"], 1.0);
    sim.expire_yeastar_tokens();
    let (status, _) = yeastar_balance(&sim, Some("static"), Some("OpenAPI")).await;
    assert_eq!(status, 200, "static tokens never expire");
}

#[tokio::test]
async fn yeastar_bad_credentials_and_grants() {
    let sim = sim(SimOptions::default()).await;
    for (form, code) in [
        (
            vec![
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
                ("grant_type", "pp_credentials"),
            ],
            "invalid_client",
        ),
        (
            vec![("client_id", CLIENT_ID), ("grant_type", "pp_credentials")],
            "parameter_validation_failed",
        ),
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", "nope")],
            "refresh_token_invalid",
        ),
        (
            vec![("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
            "parameter_validation_failed",
        ),
        (vec![("grant_type", "password")], "unsupported_grant_type"),
    ] {
        let body = yeastar_token(&sim, &form).await;
        assert_eq!(body["code"], code, "{form:?}");
        assert_eq!(body["result"], Value::Null);
        assert_ne!(body["status"], 200);
    }
    assert_eq!(sim.request_count(Route::YeastarToken), 5);
}

#[tokio::test]
async fn yeastar_refresh_and_expiry() {
    let sim = sim(SimOptions {
        token_ttl_secs: 1,
        ..SimOptions::default()
    })
    .await;
    let first = yeastar_token(
        &sim,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("grant_type", "pp_credentials"),
        ],
    )
    .await;
    assert_eq!(first["result"]["expiresIn"], "1");
    let token = first["result"]["token"].as_str().unwrap();
    let refresh = first["result"]["refreshToken"].as_str().unwrap();

    let (status, _) = yeastar_balance(&sim, Some(token), Some("OpenAPI")).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = yeastar_balance(&sim, Some(token), Some("OpenAPI")).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "access_token_expired");

    let second = yeastar_token(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(second["code"], "success");
    let new_token = second["result"]["token"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_ne!(
        second["result"]["refreshToken"],
        first["result"]["refreshToken"]
    );
    let (status, _) = yeastar_balance(&sim, Some(new_token), Some("OpenAPI")).await;
    assert_eq!(status, 200);

    let reused = yeastar_token(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(
        reused["code"], "refresh_token_invalid",
        "refresh tokens are single-use"
    );

    sim.expire_yeastar_tokens();
    let (status, _) = yeastar_balance(&sim, Some(new_token), Some("OpenAPI")).await;
    assert_eq!(status, 401);

    sim.revoke_yeastar_refresh_tokens();
    let refresh = second["result"]["refreshToken"].as_str().unwrap();
    let revoked = yeastar_token(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(revoked["code"], "refresh_token_invalid");
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
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (_, balance) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
    let credits: f64 = balance["credits"].as_str().unwrap().parse().unwrap();
    assert!(credits < 100.0 && credits > 99.0, "{credits}");
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

    let (_, history) = acedata(&sim, "GET", "/api/v1/distribution-histories/?limit=1").await;
    assert!(
        history["count"].as_u64().unwrap() >= 23,
        "{}",
        history["count"]
    );
    let (_, status) = acedata(&sim, "GET", "/api/v1/distribution-statuses/").await;
    assert!(status["results"][0]["price"].as_f64() > before_status["results"][0]["price"].as_f64());

    sim.set_credits(TOKEN, "0.01");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, balance) = acedata(&sim, "POST", "/api/v1/balances/initialize/").await;
    assert_eq!(balance["credits"], "0.00", "never below zero");
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

#[test]
fn parses_credit_strings() {
    assert_eq!(parse_cents("123.45"), Some(12345));
    assert_eq!(parse_cents("7"), Some(700));
    assert_eq!(parse_cents("0.5"), Some(50));
    assert_eq!(parse_cents("1.234"), None);
    assert_eq!(parse_cents("-1"), None);
    assert_eq!(parse_cents(""), None);
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

#[tokio::test]
async fn applications_page_in_both_list_keys_and_need_a_user_id_when_asked() {
    for (list_key, key) in [(ListKey::Results, "results"), (ListKey::Items, "items")] {
        let sim = sim(SimOptions {
            list_key,
            require_user_id: true,
            ..SimOptions::default()
        })
        .await;
        let (status, _) = acedata(&sim, "GET", "/api/v1/applications/?limit=3").await;
        assert_eq!(status, 403, "no user_id");
        let mut seen = Vec::new();
        for offset in [0, 3, 6] {
            let (status, body) = acedata(
                &sim,
                "GET",
                &format!("/api/v1/applications/?user_id=me&limit=3&offset={offset}"),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(body["count"], 7);
            seen.extend(body[key].as_array().unwrap().iter().cloned());
        }
        assert_eq!(seen, sim.applications(TOKEN), "{key}");
        let services: Vec<&str> = seen
            .iter()
            .map(|a| a["service"]["alias"].as_str().unwrap_or("-"))
            .collect();
        assert_eq!(
            services,
            ["midjourney", "suno", "openai", "luma", "-", "kling", "flux"]
        );
        assert!(seen
            .iter()
            .all(|a| a["credentials"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["token"]
                    .as_str()
                    .unwrap()
                    .starts_with(APPLICATION_TOKEN_PREFIX))));
    }
}

#[tokio::test]
async fn applications_change_and_vanish_on_request() {
    let sim = sim(SimOptions::default()).await;
    let id = "0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a";
    sim.set_application_amounts(TOKEN, id, 12.34, 487.66);
    sim.remove_credential(TOKEN, id, "cred-1");
    sim.remove_application(TOKEN, "00000000-0000-4000-b000-000000000002");
    let (_, body) = acedata(&sim, "GET", "/api/v1/applications/?limit=100").await;
    assert_eq!(body["count"], 6);
    let first = &body["results"][0];
    assert_eq!(first["remaining_amount"], json!(12.34));
    assert_eq!(first["used_amount"], json!(487.66));
    assert_eq!(first["credentials"], json!([]));
}
