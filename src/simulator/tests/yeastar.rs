//! The Yeastar simulator: token exchange, refresh, expiry, balance.

use super::*;

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
