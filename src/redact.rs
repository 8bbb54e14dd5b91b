//! Making an upstream error message safe to show or log: the account's known secret
//! values are replaced, token-like words are masked, and the text is cut to a sane
//! length. Used by the status page, the scheduler's log line and the token renewal's.
//! HTML escaping is the page's job.

use secrecy::{ExposeSecret, SecretString};

use crate::text::truncate;

/// What a redacted secret is replaced by.
pub const REDACTED: &str = "[redacted]";

/// Longest message kept, in characters (after redaction).
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Shortest secret value searched for: shorter ones would redact ordinary words.
const MIN_SECRET_CHARS: usize = 6;

/// Names whose value, in `name=value` or `"name": "value"`, is a secret.
const SECRET_KEYS: [&str; 9] = [
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "credential",
];

/// `message` with every secret in `secrets` and every token-looking word masked,
/// cut to [`MAX_MESSAGE_CHARS`]. For text from upstream.
pub fn redact(message: &str, secrets: &[SecretString]) -> String {
    let out = replace_known(message, secrets);
    truncate(&mask_words(&out), MAX_MESSAGE_CHARS)
}

/// `message` with every secret in `secrets` replaced, cut to [`MAX_MESSAGE_CHARS`],
/// its words left alone. For the exporter's own messages about where a secret comes
/// from (`no platform token: /run/secrets/token is empty`): they name a file or a
/// variable, never a value, and word masking would eat the path or the words after
/// `token:`.
pub fn redact_known(message: &str, secrets: &[SecretString]) -> String {
    truncate(&replace_known(message, secrets), MAX_MESSAGE_CHARS)
}

fn replace_known(message: &str, secrets: &[SecretString]) -> String {
    let mut out = message.to_string();
    let mut known: Vec<&str> = secrets
        .iter()
        .map(|s| s.expose_secret().trim())
        .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
        .collect();
    // Longest first, so a secret that contains another is replaced whole.
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in &known {
        out = out.replace(secret, REDACTED);
        out = redact_cut_prefix(&out, secret);
    }
    out
}

/// An upstream message may have been cut in the middle of a secret (`…` marks the cut):
/// a tail that is the start of a secret goes too.
fn redact_cut_prefix(text: &str, secret: &str) -> String {
    let body = text.strip_suffix('…').unwrap_or(text);
    let mut ends = secret.char_indices().map(|(i, _)| i).skip(MIN_SECRET_CHARS);
    let longest = ends
        .by_ref()
        .filter(|&i| body.ends_with(&secret[..i]))
        .last();
    match longest {
        Some(i) => format!("{}{REDACTED}…", &body[..body.len() - i]),
        None => text.to_string(),
    }
}

/// Mask words that look like credentials: the word after `Bearer`/`Basic`, `sk-…` API
/// keys, JWTs, the value of a secret-named key, and long random-looking strings.
fn mask_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // After `Bearer`/`Basic`: the next word is a credential.
    let mut mask_next = false;
    // After a secret-named key and a space: the next word, if it looks like a value
    // (`token ab12-x`) rather than a word (`token expired`).
    let mut mask_value = false;
    // After a secret-named key: the next word is its value if `=` or `:` comes between.
    let mut after_key = false;
    for piece in split_keep(text) {
        if piece.chars().all(is_separator) {
            if after_key && piece.contains(['=', ':']) {
                mask_next = true;
            } else if after_key && piece.chars().all(char::is_whitespace) {
                mask_value = true;
            }
            after_key = false;
            out.push_str(piece);
            continue;
        }
        after_key = false;
        if std::mem::take(&mut mask_value) && looks_like_value(piece) {
            out.push_str(REDACTED);
            continue;
        }
        let lower = piece.to_ascii_lowercase();
        // `Authorization: Bearer x`: the scheme stays, the credential after it goes.
        if lower == "bearer" || lower == "basic" {
            out.push_str(piece);
            mask_next = true;
            continue;
        }
        if std::mem::take(&mut mask_next) {
            out.push_str(REDACTED);
            continue;
        }
        if SECRET_KEYS.iter().any(|k| lower.contains(k)) && !lower.contains(REDACTED_WORD) {
            out.push_str(piece);
            after_key = true;
            continue;
        }
        if looks_like_secret(piece) {
            out.push_str(REDACTED);
            continue;
        }
        out.push_str(piece);
    }
    out
}

const REDACTED_WORD: &str = "redacted";

fn is_separator(c: char) -> bool {
    !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '~' | '[' | ']'))
}

/// Words and the separator runs between them, in order.
fn split_keep(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_sep: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let sep = is_separator(c);
        if in_sep.is_some_and(|s| s != sep) {
            parts.push(&text[start..i]);
            start = i;
        }
        in_sep = Some(sep);
    }
    if start < text.len() {
        parts.push(&text[start..]);
    }
    parts
}

/// A word that reads as a value rather than as English: it has a digit, a capital
/// after the first letter, or inner punctuation (`ab12`, `xYz`, `ys-secret`).
fn looks_like_value(word: &str) -> bool {
    let word = word.trim_end_matches(['.', ',']);
    word.chars().any(|c| c.is_ascii_digit())
        || word.chars().skip(1).any(|c| c.is_uppercase())
        || word.contains(['-', '_', '+', '/', '~', '.'])
        || word.chars().count() >= 24
}

fn looks_like_secret(word: &str) -> bool {
    let word = word.trim_matches('.');
    if word.starts_with("sk-") && word.len() >= 8 {
        return true;
    }
    if word.starts_with("eyJ") && word.matches('.').count() >= 2 {
        return true;
    }
    // Long strings of mixed letters and digits: keys, not words. 32 hex digits (a
    // request id) stay readable; longer random strings do not.
    let long = word.chars().count() >= 40;
    let digits = word.chars().filter(char::is_ascii_digit).count();
    let letters = word.chars().filter(char::is_ascii_alphabetic).count();
    long && digits >= 4 && letters >= 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(v: &[&str]) -> Vec<SecretString> {
        v.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    #[test]
    fn known_secrets_are_replaced() {
        let s = secrets(&["my-TOPSECRET-value"]);
        assert_eq!(
            redact("Invalid client secret my-TOPSECRET-value given", &s),
            "Invalid client secret [redacted] given"
        );
    }

    #[test]
    fn a_secret_cut_by_truncation_is_still_removed() {
        let s = secrets(&["my-TOPSECRET-value"]);
        assert_eq!(redact("token was my-TOPSEC…", &s), "token was [redacted]…");
    }

    #[test]
    fn token_like_words_are_masked() {
        let out = redact(
            "header Authorization: Bearer abc.def-123 and key sk-live0123456789 \
             and token=plainvalue, \"client_secret\": \"hunter2x\"",
            &[],
        );
        for leaked in ["abc.def-123", "sk-live0123456789", "plainvalue", "hunter2x"] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        let jwt = redact("got eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl", &[]);
        assert_eq!(jwt, "got [redacted]");
        let long = redact(&format!("x {:032x}{:032x}", 0xabcdef12u128, 0x34u128), &[]);
        assert_eq!(long, "x [redacted]");
    }

    #[test]
    fn ordinary_messages_stay_readable() {
        for m in [
            "Invalid client_id or client_secret",
            "Invalid token.",
            "unexpected HTTP status 500: Internal Server Error",
            "request_id=0123456789abcdef0123456789abcdef",
            "API error: code=invalid_client detail=Invalid client_id or client_secret",
        ] {
            let out = redact(m, &[]);
            assert!(
                out.contains("Invalid") || out.contains("HTTP") || out.contains("0123456789abcdef"),
                "{m} -> {out}"
            );
        }
        assert_eq!(redact("Invalid token.", &[]), "Invalid token.");
        assert_eq!(
            redact("Invalid client_id or client_secret", &[]),
            "Invalid client_id or client_secret"
        );
    }

    #[test]
    fn the_value_after_token_is_masked_but_words_stay() {
        for (message, leaked) in [
            ("upstream failed for token ace-7f3a9c", "ace-7f3a9c"),
            ("Invalid token abcDEFghi given", "abcDEFghi"),
            ("bad secret s3cr3t.", "s3cr3t"),
            ("api_key zz_top_value rejected", "zz_top_value"),
        ] {
            let out = redact(message, &[]);
            assert!(!out.contains(leaked), "{message} -> {out}");
            assert!(out.contains(REDACTED), "{message} -> {out}");
        }
        for m in [
            "token expired",
            "Invalid token. Please log in again",
            "the token is invalid",
            "client secret mismatch",
        ] {
            assert_eq!(redact(m, &[]), m);
        }
    }

    #[test]
    fn our_own_messages_keep_their_words_and_paths() {
        let s = secrets(&["the-real-token-value"]);
        for m in [
            "no platform token: /tmp/x/acetok.txt is empty",
            "no platform token: cannot read /tmp/x/acetok.txt: No such file or directory (os error 2)",
            "no client secret: environment variable YEASTAR_CLIENT_SECRET is not set",
        ] {
            assert_eq!(redact_known(m, &s), m);
        }
        assert_eq!(
            redact_known("token file holds the-real-token-value", &s),
            "token file holds [redacted]"
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let out = redact(&"word ".repeat(200), &[]);
        assert_eq!(out.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(out.ends_with('…'));
    }
}
