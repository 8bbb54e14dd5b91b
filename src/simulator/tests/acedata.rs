//! The Ace Data Cloud simulator: seed shapes, paging, auth, applications.

use super::*;

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

#[test]
fn parses_credit_strings() {
    assert_eq!(parse_cents("123.45"), Some(12345));
    assert_eq!(parse_cents("7"), Some(700));
    assert_eq!(parse_cents("0.5"), Some(50));
    assert_eq!(parse_cents("1.234"), None);
    assert_eq!(parse_cents("-1"), None);
    assert_eq!(parse_cents(""), None);
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

/// 2024-09-03T12:00:00Z.
const SEPT_3RD: i64 = 1_725_364_800;

#[tokio::test]
async fn usage_rows_follow_the_clock_the_window_and_both_shapes() {
    let sim = sim(SimOptions {
        now: Some(SEPT_3RD),
        ..SimOptions::default()
    })
    .await;
    let (status, body) = acedata(
        &sim,
        "GET",
        "/api/v1/usage/apis/aggregate/?created_at_from=2024-08-28T00:00:00Z&user_id=me",
    )
    .await;
    assert_eq!(status, 200);
    let rows = body["results"].as_array().unwrap();
    assert!(rows
        .iter()
        .all(|r| r["date"].as_str().unwrap() >= "2024-08-28"));
    assert!(rows.contains(&json!({"date": "2024-09-03", "api_id": "api-mj", "amount": 96.25})));
    assert!(rows.contains(&json!({"date": "2024-08-31", "api_id": "api-legacy", "amount": 2})));
    // 7 days of api-mj and api-suno, api-chat 2 days ago, api-legacy.
    assert_eq!(rows.len(), 7 + 7 + 1 + 1);
    assert_eq!(body["api_map"]["api-mj"]["name"], "Midjourney Imagine");
    assert!(body["api_map"].get("api-legacy").is_none());

    sim.update_options(|o| o.usage_shape = UsageShape::Items);
    let (_, body) = acedata(&sim, "GET", "/api/v1/usage/apis/aggregate/").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 35 + 35 + 2 + 1);
    assert_eq!(body["apis"]["api-chat"]["title"], "Chat \"GPT\"\n翻译 ✓");
    assert!(body.get("results").is_none());
}

#[tokio::test]
async fn orders_are_newest_first_filtered_and_paged() {
    let sim = sim(SimOptions {
        now: Some(SEPT_3RD),
        ..SimOptions::default()
    })
    .await;
    let (_, all) = acedata(&sim, "GET", "/api/v1/orders/?limit=100").await;
    assert_eq!(all["count"], 7);
    let (_, body) = acedata(
        &sim,
        "GET",
        "/api/v1/orders/?created_at_from=2024-08-04T12:00:00Z&limit=2&offset=2",
    )
    .await;
    assert_eq!(body["count"], 6, "the order of 45 days ago is left out");
    let page: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    // Newest first: ord-4 (2 h), ord-3 (3 h), ord-1 (2 d), ord-5 (5 d), ...
    assert_eq!(page, ["ord-1", "ord-5"]);
    let (_, first) = acedata(&sim, "GET", "/api/v1/orders/?limit=1").await;
    assert_eq!(first["results"][0]["created_at"], "2024-09-03T10:00:00Z");
    assert_eq!(first["results"][0]["state"], "Pending");

    sim.add_order(TOKEN, json!({"id": "new", "state": "Paid"}));
    let (_, first) = acedata(&sim, "GET", "/api/v1/orders/?limit=1").await;
    assert_eq!(first["results"][0]["id"], "new");

    let (_, configs) = acedata(
        &sim,
        "GET",
        "/api/v1/auto-recharge-configs/?limit=2&offset=1",
    )
    .await;
    assert_eq!(configs["count"], 3);
    assert_eq!(configs["results"][0]["status"], "Paused");
}

#[tokio::test]
async fn spend_lists_need_user_id_when_the_upstream_does() {
    let sim = sim(SimOptions {
        require_user_id: true,
        ..SimOptions::default()
    })
    .await;
    for path in [
        "/api/v1/usage/apis/aggregate/",
        "/api/v1/orders/",
        "/api/v1/auto-recharge-configs/",
    ] {
        assert_eq!(acedata(&sim, "GET", path).await.0, 403, "{path}");
        let with = format!("{path}?user_id=me");
        assert_eq!(acedata(&sim, "GET", &with).await.0, 200, "{path}");
    }
}
