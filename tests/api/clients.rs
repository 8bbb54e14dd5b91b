//! Client tests against wiremock: success, 401, 429 with Retry-After, 5xx, timeout,
//! malformed JSON, and every history page.

use std::time::Duration;

use balance_exporter::providers::acedata::client::AcedataClient;
use balance_exporter::providers::acedata::history::HistorySync;
use balance_exporter::providers::yeastar::client::YeastarClient;
use balance_exporter::secret::Secret;
use balance_exporter::upstream::Upstream;
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ace(server: &MockServer, timeout: Duration) -> AcedataClient {
    AcedataClient::new(
        Upstream::new(4),
        "main",
        &server.uri(),
        Secret::literal("tok-123"),
        None,
        timeout,
    )
}

fn seed_balance() -> serde_json::Value {
    json!({
        "id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "user_id": "user-uuid",
        "credits": "100.00",
        "packages": [{"id": "pkg-uuid", "name": "Basic Package", "amount": 100, "price": "9.90"}],
        "created_at": "2024-01-15T10:30:00Z",
        "updated_at": "2024-01-15T10:30:00Z"
    })
}

#[tokio::test]
async fn balance_success_sends_the_documented_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/balances/initialize/"))
        .and(header("authorization", "Bearer tok-123"))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(seed_balance()))
        .expect(1)
        .mount(&server)
        .await;
    let b = ace(&server, Duration::from_secs(30))
        .once()
        .balance()
        .await
        .unwrap();
    assert_eq!(b.credits.to_string(), "100.00");
    assert_eq!(b.packages[0].name, "Basic Package");
}

async fn error_of(
    template: ResponseTemplate,
    timeout: Duration,
) -> balance_exporter::collector::CollectError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(template)
        .mount(&server)
        .await;
    ace(&server, timeout).once().balance().await.unwrap_err()
}

#[tokio::test]
async fn http_failures_map_to_reasons() {
    let long = Duration::from_secs(30);
    let e = error_of(
        ResponseTemplate::new(401).set_body_json(json!({"detail": "Invalid token."})),
        long,
    )
    .await;
    assert_eq!(e.reason(), "unauthorized");
    assert!(e.to_string().contains("Invalid token."), "{e}");

    let e = error_of(
        ResponseTemplate::new(429).insert_header("retry-after", "7"),
        long,
    )
    .await;
    assert_eq!(e.reason(), "rate_limited");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

    // The same wait as an HTTP date two minutes ahead (whole seconds, so up to one
    // less, and the request itself takes a moment).
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
    let e = error_of(
        ResponseTemplate::new(429).insert_header("retry-after", date.as_str()),
        long,
    )
    .await;
    assert_eq!(e.reason(), "rate_limited");
    let wait = e.retry_after().expect("an HTTP date is a Retry-After");
    assert!(
        (Duration::from_secs(100)..=Duration::from_secs(120)).contains(&wait),
        "{date}: {wait:?}"
    );

    let e = error_of(ResponseTemplate::new(429), long).await;
    assert_eq!((e.reason(), e.retry_after()), ("rate_limited", None));

    let e = error_of(
        ResponseTemplate::new(503)
            .set_body_json(json!({"error": {"code": "unavailable", "message": "maintenance"}})),
        long,
    )
    .await;
    assert_eq!(e.reason(), "http_status");
    assert!(
        e.to_string().contains("503") && e.to_string().contains("maintenance"),
        "{e}"
    );

    let e = error_of(
        ResponseTemplate::new(200).set_body_string("{\"credits\": \"1"),
        long,
    )
    .await;
    assert_eq!(e.reason(), "decode");

    let e = error_of(
        ResponseTemplate::new(200)
            .set_body_json(seed_balance())
            .set_delay(Duration::from_millis(800)),
        Duration::from_millis(150),
    )
    .await;
    assert_eq!(e.reason(), "timeout");
}

fn record(id: usize, reward: f64, price: f64, invalid: bool) -> serde_json::Value {
    json!({
        "id": format!("h-{id}"), "user_id": "u", "inviter_id": "u", "invitee_id": "i",
        "order_id": format!("o-{id}"), "percentage": 0.1, "reward": reward, "invalid": invalid,
        "order": {"id": format!("o-{id}"), "price": price, "state": "Finished"},
        "invitee": {"id": "i", "nickname": "New User"}, "tags": null, "metadata": null,
        "created_at": format!("2024-08-01T10:{:02}:00.000000Z", id)
    })
}

#[tokio::test]
async fn every_history_page_is_read_and_summed_exactly() {
    let server = MockServer::start().await;
    // 5 records, newest first, pages of 2: offsets 0, 2, 4.
    let rewards = [0.1, 0.2, 0.3, 0.4, 0.5];
    let all: Vec<_> = (0..5)
        .rev()
        .map(|i| record(i, rewards[i], 1.1, i == 2))
        .collect();
    for offset in [0usize, 2, 4] {
        let page: Vec<_> = all.iter().skip(offset).take(2).cloned().collect();
        Mock::given(method("GET"))
            .and(path("/api/v1/distribution-histories/"))
            .and(query_param("limit", "2"))
            .and(query_param("offset", offset.to_string()))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"count": 5, "results": page})),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    let client = ace(&server, Duration::from_secs(30));
    let mut sync = HistorySync::new(2, Duration::from_secs(3600));
    let t = *sync.sync(&mut client.once()).await.unwrap();
    assert_eq!(t.valid.records, 4);
    assert_eq!(t.invalid.records, 1);
    // 0.1 + 0.2 + 0.4 + 0.5 exactly, and 0.3 invalid.
    assert_eq!(t.valid.reward.to_string(), "1.2");
    assert_eq!(t.invalid.reward.to_string(), "0.3");
    assert_eq!(t.valid.order_amount.to_string(), "4.4");
    assert_eq!(t.last_record, Some(1722506640.0));
}

#[tokio::test]
async fn history_page_failure_keeps_the_previous_totals() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("offset", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 3, "results": [record(2, 1.0, 1.0, false), record(1, 1.0, 1.0, false)]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("offset", "2"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let client = ace(&server, Duration::from_secs(30));
    let mut sync = HistorySync::new(2, Duration::from_secs(3600));
    assert_eq!(
        sync.sync(&mut client.once()).await.unwrap_err().reason(),
        "http_status"
    );
    assert_eq!(sync.totals().valid.records, 0);
}

#[tokio::test]
async fn yeastar_exchange_posts_the_form_and_reads_the_grant() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/openapi/v1/oauth/token"))
        .and(header("user-agent", "OpenAPI"))
        .and(body_string_contains("grant_type=pp_credentials"))
        .and(body_string_contains("client_id=cid"))
        .and(body_string_contains("client_secret=csecret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": "success", "detailMessage": "", "requestId": "r1",
            "result": {"token": "acc", "refreshToken": "ref", "expiresIn": "1800", "tokenHead": "Bearer "},
            "status": 200
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/user/openapi/user/v1/client/account_balance"))
        .and(header("authorization", "Bearer acc"))
        .and(header("user-agent", "OpenAPI"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": "success", "detailMessage": "", "requestId": "85fa7686fa9f8a090c937bad50f565ad",
            "result": {"accountBalance": 675.24}, "status": 200
        })))
        .mount(&server)
        .await;
    let c = YeastarClient::new(
        Upstream::new(2),
        &server.uri(),
        "OpenAPI",
        Duration::from_secs(30),
    );
    let grant = c
        .exchange("cid", &SecretString::from("csecret"))
        .await
        .unwrap();
    assert_eq!(grant.expires_in, 1800);
    let b = c.balance(&SecretString::from(grant.token)).await.unwrap();
    assert_eq!(b.account_balance, 675.24);
}

#[tokio::test]
async fn yeastar_http_200_with_error_code_is_api_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": "access_token_invalid", "detailMessage": "token invalid", "requestId": "abc",
            "result": null, "status": 401
        })))
        .mount(&server)
        .await;
    let c = YeastarClient::new(
        Upstream::new(2),
        &server.uri(),
        "OpenAPI",
        Duration::from_secs(30),
    );
    let e = c.balance(&SecretString::from("x")).await.unwrap_err();
    assert_eq!(e.reason(), "api_error");
    assert!(e.to_string().contains("access_token_invalid") && e.to_string().contains("abc"));
}
