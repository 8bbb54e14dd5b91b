//! Yeastar Partner Portal wire types and pure parsers (seed 001).

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use crate::collector::CollectError;

/// The envelope every answer comes in.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    code: String,
    #[serde(default)]
    detail_message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default = "Option::default")]
    result: Option<T>,
}

/// `Balance_Info`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceInfo {
    pub account_balance: f64,
}

/// The `result` of the token endpoint.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenGrant {
    pub token: String,
    pub refresh_token: String,
    /// Seconds the access token lives; the API sends it as a string.
    #[serde(deserialize_with = "seconds")]
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("token", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        N(u64),
        S(String),
    }
    match Either::deserialize(d).map_err(|_| D::Error::custom("expiresIn: expected seconds"))? {
        Either::N(n) => Ok(n),
        Either::S(s) => s
            .trim()
            .parse()
            .map_err(|_| D::Error::custom(format!("expiresIn: `{s}` is not a number of seconds"))),
    }
}

/// Parse an envelope; `code != "success"` is an `api_error` even on HTTP 200.
fn parse_envelope<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, CollectError> {
    let env: Envelope<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| CollectError::Decode(format!("{what}: {e}")))?;
    if env.code != "success" {
        return Err(CollectError::Api {
            code: env.code,
            detail: env.detail_message.unwrap_or_default(),
            request_id: env.request_id.unwrap_or_default(),
        });
    }
    let result = env
        .result
        .ok_or_else(|| CollectError::Decode(format!("{what}: `result` is missing")))?;
    serde_json::from_value(result).map_err(|e| CollectError::Decode(format!("{what}: result: {e}")))
}

/// Parse the account-balance answer.
pub fn parse_balance(body: &[u8]) -> Result<BalanceInfo, CollectError> {
    parse_envelope(body, "account balance")
}

/// Parse the token answer.
pub fn parse_token(body: &[u8]) -> Result<TokenGrant, CollectError> {
    parse_envelope(body, "token")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The response example of seed 001, verbatim.
    const SEED_BALANCE: &str = r#"{
"code": "success",
"detailMessage": "",
"requestId": "85fa7686fa9f8a090c937bad50f565ad",
"result": {
"accountBalance": 675.24
},
"status": 200
}"#;

    #[test]
    fn seed_balance_parses() {
        assert_eq!(
            parse_balance(SEED_BALANCE.as_bytes()).unwrap(),
            BalanceInfo {
                account_balance: 675.24
            }
        );
    }

    #[test]
    fn non_success_code_is_api_error_even_with_a_result() {
        let body = SEED_BALANCE.replace(r#""code": "success""#, r#""code": "QUOTA""#);
        let e = parse_balance(body.as_bytes()).unwrap_err();
        assert_eq!(e.reason(), "api_error");
        assert!(e.to_string().contains("85fa7686fa9f8a090c937bad50f565ad"));
    }

    #[test]
    fn wrong_types_are_decode_errors() {
        for bad in [
            SEED_BALANCE.replace("675.24", r#""675.24x""#),
            SEED_BALANCE.replace("675.24", "null"),
            SEED_BALANCE.replace(r#""result": {"#, r#""result": {"x":1},"y": {"#),
            r#"{"code":"success"}"#.to_string(),
            "not json".to_string(),
        ] {
            assert_eq!(
                parse_balance(bad.as_bytes()).unwrap_err().reason(),
                "decode",
                "{bad}"
            );
        }
    }

    #[test]
    fn token_grant_parses_string_seconds_and_hides_tokens() {
        let body = r#"{"code":"success","detailMessage":"","requestId":"r","result":{"token":"acc-tok","refreshToken":"ref-tok","expiresIn":"1800","tokenHead":"Bearer "},"status":200}"#;
        let g = parse_token(body.as_bytes()).unwrap();
        assert_eq!(g.expires_in, 1800);
        let dbg = format!("{g:?}");
        assert!(
            !dbg.contains("acc-tok") && !dbg.contains("ref-tok"),
            "{dbg}"
        );
    }
}
