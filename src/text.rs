//! Cutting text to a length for display: an upstream error detail or a redacted
//! message ends up in a log line or on the status page, where a whole vendor body
//! would be noise.

/// `s` cut to its first `max` characters, with `…` marking the cut; `s` itself when
/// it has `max` characters or fewer. Counts characters, not bytes, so a cut never
/// splits one.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_characters_and_marks_the_cut() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("", 0), "");
        assert_eq!(truncate("éèêë", 2), "éè…");
    }
}
