//! The text format's escaping rules (exposition format 0.0.4).

/// Whether `name` is a valid metric or label name.
pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// HELP text escapes `\` and newline; label values also `"`.
pub(super) fn escape_into(s: &str, quote: bool, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Append a label value, escaped.
pub(super) fn escape_label_value(v: &str, out: &mut Vec<u8>) {
    if !v.bytes().any(|b| matches!(b, b'\\' | b'\n' | b'"')) {
        out.extend_from_slice(v.as_bytes());
        return;
    }
    let mut escaped = String::with_capacity(v.len() + 8);
    escape_into(v, true, &mut escaped);
    out.extend_from_slice(escaped.as_bytes());
}
