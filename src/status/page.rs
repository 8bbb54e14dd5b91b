//! `/status` as HTML (server-rendered, no JavaScript, readable on a phone) and as JSON
//! (`?format=json`), filtered by `?account=` and `?state=`.

use std::fmt::Write as _;

use super::{ErrorInfo, State, StatusView, TaskStatus};
use crate::html::escape as esc;

/// What the query string asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only these accounts (exact names); empty = all.
    pub accounts: Vec<String>,
    /// Only these states; empty = all.
    pub states: Vec<State>,
    pub json: bool,
}

impl Query {
    /// Parse `account` and `state` (each repeatable, or comma-separated, or both) and
    /// `format`. A state that names no state is an error that lists the valid ones.
    pub fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut q = Query::default();
        let mut unknown = Vec::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let values = v.split(',').map(str::trim).filter(|s| !s.is_empty());
            match &*k {
                "account" => {
                    // A name may itself hold a comma: the whole value is one more name.
                    if v.contains(',') && !v.trim().is_empty() {
                        q.accounts.push(v.trim().to_string());
                    }
                    for a in values {
                        if !q.accounts.iter().any(|x| x == a) {
                            q.accounts.push(a.to_string());
                        }
                    }
                }
                "state" => {
                    for s in values {
                        match State::parse(s) {
                            Some(st) if !q.states.contains(&st) => q.states.push(st),
                            Some(_) => {}
                            None => unknown.push(s.to_string()),
                        }
                    }
                }
                "format" if v.eq_ignore_ascii_case("json") => q.json = true,
                "format" if v.is_empty() || v.eq_ignore_ascii_case("html") => q.json = false,
                // A script asking for another format would otherwise parse HTML.
                "format" => {
                    return Err(format!(
                        "unknown format {}: the formats are html, json",
                        v.trim()
                    ))
                }
                _ => {}
            }
        }
        if unknown.is_empty() {
            Ok(q)
        } else {
            let valid: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
            Err(format!(
                "unknown state {}: the states are {}",
                unknown.join(", "),
                valid.join(", ")
            ))
        }
    }

    fn keeps(&self, t: &TaskStatus) -> bool {
        (self.accounts.is_empty() || self.accounts.contains(&t.account))
            && (self.states.is_empty() || self.states.contains(&t.state))
    }
}

/// Most rows the HTML page lists: at 10,000 accounts there are 81,000, which no one
/// reads on a page (29 MB of HTML). Problems come first; the filters and the JSON reach
/// every row.
pub const HTML_ROWS: usize = 1000;

/// Keep the rows the query asks for, problems first.
pub fn filter(mut snap: StatusView, q: &Query) -> StatusView {
    snap.tasks.retain(|t| q.keeps(t));
    snap.tasks.sort_by(|a, b| {
        let rank = |s: State| State::ALL.iter().position(|x| *x == s);
        rank(a.state)
            .cmp(&rank(b.state))
            .then_with(|| a.account.cmp(&b.account))
            .then_with(|| a.collector.cmp(b.collector))
    });
    snap
}

/// The JSON view.
pub fn json(snap: &StatusView) -> String {
    let mut s = serde_json::to_string_pretty(snap).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// `1h 2m`, `3m 4s`, `5.2s`, `120ms`.
pub fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 1.0 {
        return format!("{}ms", (secs * 1000.0).round() as u64);
    }
    if secs < 10.0 {
        return format!("{secs:.1}s");
    }
    let s = secs.round() as u64;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `2026-12-04 13:05:09 UTC`.
pub fn utc(unix: f64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix.floor() as i64) else {
        return "?".into();
    };
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&f).unwrap_or_else(|_| "?".into())
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:1rem;color:#1b1f24;background:#fff;line-height:1.4}\
h1{font-size:1.4rem;margin:0 0 .5rem}\
a{color:#0b57d0}\
dl.head{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:.5rem 0 1rem;font-size:.95rem}\
dl.head dt{font-weight:600}dl.head dd{margin:0}\
.counts span{display:inline-block;margin:0 .6rem .3rem 0}\
form{margin:.5rem 0 1rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}\
input,select,button{font-size:1rem;padding:.25rem .4rem}\
table{border-collapse:collapse;width:100%;font-size:.92rem}\
th,td{border-bottom:1px solid #d0d7de;padding:.45rem .5rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}\
.state{font-weight:700;white-space:nowrap;padding:.1rem .45rem;border-radius:.3rem}\
.ok{background:#dafbe1;color:#116329}.failing{background:#ffebe9;color:#a40e26}\
.stale{background:#fff1e5;color:#953800}.not_yet_run{background:#eaeef2;color:#424a53}\
.err{max-width:36rem;overflow-wrap:anywhere}.err .reason{font-weight:700}\
.muted{color:#57606a;font-size:.85rem}\
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.4rem;margin:.2rem 0}\
@media (max-width:760px){\
table,thead,tbody,tr,td{display:block}thead{display:none}\
tr{border:1px solid #d0d7de;border-radius:.4rem;margin:0 0 .8rem;padding:.3rem}\
td{border:none;padding:.2rem .3rem}\
td::before{content:attr(data-label);display:block;font-size:.75rem;color:#57606a;text-transform:uppercase}\
}";

/// The HTML view of `all` (the counts and the account list cover every row; the
/// table shows the rows `q` asks for).
pub fn html(all: StatusView, q: &Query, telemetry_path: &str) -> String {
    let mut o = String::with_capacity(8192);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    o.push_str("<title>balance-exporter status</title>\n<style>");
    o.push_str(STYLE);
    o.push_str("</style></head><body>\n<h1>balance-exporter status</h1>\n");
    header(&mut o, &all, telemetry_path);
    counts(&mut o, &all);
    filter_form(&mut o, &all, q);
    let snap = filter(all, q);
    if snap.tasks.is_empty() {
        o.push_str("<p>No collector matches.</p>\n");
    } else {
        table(&mut o, &snap);
    }
    if snap.tasks.len() > HTML_ROWS {
        let _ = writeln!(
            o,
            "<p class=\"muted\">Showing the first {HTML_ROWS} of {} rows, problems first: \
             choose an account or a state above, or get every row as \
             <a href=\"/status?format=json\">JSON</a>.</p>",
            snap.tasks.len()
        );
    }
    o.push_str("</body></html>\n");
    o
}

fn header(o: &mut String, snap: &StatusView, telemetry_path: &str) {
    o.push_str("<dl class=\"head\">\n");
    let _ = writeln!(o, "<dt>Version</dt><dd>{}</dd>", esc(snap.version));
    let _ = writeln!(
        o,
        "<dt>Uptime</dt><dd>{} (since {})</dd>",
        human_duration(snap.uptime_seconds),
        utc(snap.started)
    );
    let _ = writeln!(
        o,
        "<dt>Configuration</dt><dd>{} (loaded {})</dd>",
        esc(&snap.config),
        utc(snap.config_loaded)
    );
    let reload = match &snap.last_reload {
        None => "none since start".to_string(),
        Some(r) if r.ok => format!("{}: ok", utc(r.at)),
        Some(r) => format!(
            "{}: <strong>rejected</strong>, the previous configuration keeps running<pre>{}</pre>",
            utc(r.at),
            esc(r.problems.as_deref().unwrap_or(""))
        ),
    };
    let _ = writeln!(o, "<dt>Last reload</dt><dd>{reload}</dd>");
    if let Some(s) = snap.shard {
        let _ = writeln!(o, "<dt>Shard</dt><dd>{} of {}</dd>", s.ordinal, s.total);
    }
    let _ = writeln!(o, "<dt>As of</dt><dd>{}</dd>", utc(snap.now));
    let _ = writeln!(
        o,
        "<dt>Links</dt><dd><a href=\"/\">Home</a> · <a href=\"{}\">Metrics</a> · <a href=\"/status?format=json\">JSON</a></dd>",
        esc(telemetry_path)
    );
    o.push_str("</dl>\n");
}

fn counts(o: &mut String, snap: &StatusView) {
    o.push_str("<p class=\"counts\">");
    for st in State::ALL {
        let n = snap.tasks.iter().filter(|t| t.state == st).count();
        let _ = write!(
            o,
            "<span><a class=\"state {cls}\" href=\"/status?state={cls}\">{label}</a> {n}</span>",
            cls = st.as_str(),
            label = st.label(),
        );
    }
    o.push_str("<span><a href=\"/status\">all</a></span></p>\n");
}

fn filter_form(o: &mut String, snap: &StatusView, q: &Query) {
    let mut accounts: Vec<&str> = snap.tasks.iter().map(|t| t.account.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    o.push_str("<form method=\"get\" action=\"/status\">\n<label>Account <select name=\"account\"><option value=\"\">all</option>");
    let current = match q.accounts.as_slice() {
        [one] => Some(one.as_str()),
        _ => None,
    };
    let mut listed = accounts.clone();
    if let Some(c) = current {
        if !listed.contains(&c) {
            listed.push(c);
        }
    }
    for a in listed {
        let sel = if Some(a) == current { " selected" } else { "" };
        let _ = write!(o, "<option{sel}>{}</option>", esc(a));
    }
    o.push_str(
        "</select></label>\n<label>State <select name=\"state\"><option value=\"\">all</option>",
    );
    for st in State::ALL {
        let sel = if q.states == [st] { " selected" } else { "" };
        let _ = write!(
            o,
            "<option value=\"{}\"{sel}>{}</option>",
            st.as_str(),
            st.label()
        );
    }
    o.push_str("</select></label>\n<button type=\"submit\">Filter</button></form>\n");
}

fn table(o: &mut String, snap: &StatusView) {
    o.push_str(
        "<table>\n<thead><tr><th>Account</th><th>Collector</th><th>State</th>\
         <th>Last success</th><th>Last attempt</th><th>Next attempt</th>\
         <th>Last error</th><th>Series</th></tr></thead>\n<tbody>\n",
    );
    for t in snap.tasks.iter().take(HTML_ROWS) {
        let _ = write!(
            o,
            "<tr id=\"{id}\" data-state=\"{st}\"><td data-label=\"Account\">{acc}</td>\
             <td data-label=\"Collector\">{col}</td>\
             <td data-label=\"State\"><span class=\"state {st}\">{label}</span>{fails}</td>",
            id = esc(&format!("{}/{}", t.account, t.collector)),
            acc = esc(&t.account),
            col = esc(t.collector),
            st = t.state.as_str(),
            label = t.state.label(),
            fails = if t.consecutive_failures > 1 {
                format!(
                    "<div class=\"muted\">{} failures in a row</div>",
                    t.consecutive_failures
                )
            } else {
                String::new()
            },
        );
        let since = match t.last_success {
            Some(s) => format!(
                "{} ago<div class=\"muted\">{}</div>",
                human_duration(snap.now - s),
                utc(s)
            ),
            None => "never".into(),
        };
        let _ = write!(o, "<td data-label=\"Last success\">{since}</td>");
        let attempt = match (t.last_attempt, t.last_duration_seconds) {
            (Some(at), Some(d)) => format!(
                "{} ago, took {}<div class=\"muted\">{}</div>",
                human_duration(snap.now - at),
                human_duration(d),
                utc(at)
            ),
            _ => "not yet".into(),
        };
        let _ = write!(o, "<td data-label=\"Last attempt\">{attempt}</td>");
        let next = match t.next_attempt {
            Some(n) if n > snap.now => format!("in {}", human_duration(n - snap.now)),
            Some(_) => "due now".into(),
            None => "–".into(),
        };
        let note = t
            .next_attempt_note
            .as_deref()
            .map(|n| format!("<div class=\"muted\">{}</div>", esc(n)))
            .unwrap_or_default();
        let _ = write!(
            o,
            "<td data-label=\"Next attempt\">{next}{note}<div class=\"muted\">every {}</div></td>",
            human_duration(t.interval_seconds)
        );
        let _ = write!(
            o,
            "<td data-label=\"Last error\" class=\"err\">{}</td>",
            error_cell(t.last_error.as_ref(), t.state, snap.now)
        );
        let series = t
            .series
            .map(|n| n.to_string())
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(o, "<td data-label=\"Series\">{series}</td></tr>");
    }
    o.push_str("</tbody></table>\n");
}

fn error_cell(e: Option<&ErrorInfo>, state: State, now: f64) -> String {
    let Some(e) = e else {
        return "none".into();
    };
    let mut s = format!("<span class=\"reason\">{}</span>", esc(e.reason));
    if let Some(h) = e.http_status {
        let _ = write!(s, " · HTTP {h}");
    }
    if let Some(c) = &e.code {
        let _ = write!(s, " · code <code>{}</code>", esc(c));
    }
    let _ = write!(s, "<div class=\"msg\">{}</div>", esc(&e.message));
    if let Some(r) = &e.request_id {
        let _ = write!(s, "<div class=\"muted\">requestId {}</div>", esc(r));
    }
    let when = if state == State::Ok {
        format!("{} ago (recovered since)", human_duration(now - e.at))
    } else {
        format!("{} ago", human_duration(now - e.at))
    };
    let _ = write!(s, "<div class=\"muted\">{when}</div>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parses_filters() {
        let q = Query::parse(Some(
            "account=a%20b&state=failing,stale&state=ok&format=json",
        ))
        .unwrap();
        assert_eq!(q.accounts, ["a b"]);
        assert_eq!(q.states, [State::Failing, State::Stale, State::Ok]);
        assert!(q.json);
        assert_eq!(
            Query::parse(Some("state=not+yet+run")).unwrap().states,
            [State::NotYetRun]
        );
        assert_eq!(Query::parse(None), Ok(Query::default()));
    }

    #[test]
    fn an_unknown_format_is_refused_naming_the_valid_ones() {
        assert_eq!(
            Query::parse(Some("format=xml")),
            Err("unknown format xml: the formats are html, json".to_string())
        );
        assert!(!Query::parse(Some("format=html")).unwrap().json);
        assert!(!Query::parse(Some("format=")).unwrap().json);
        assert!(Query::parse(Some("format=JSON")).unwrap().json);
    }

    #[test]
    fn both_filters_take_repeated_and_comma_separated_values() {
        let comma = Query::parse(Some("account=a,b&state=failing,ok")).unwrap();
        let repeated = Query::parse(Some("account=a&account=b&state=failing&state=ok")).unwrap();
        assert_eq!(comma.states, repeated.states);
        let board = crate::status::StatusBoard::new("x");
        let every = std::time::Duration::from_secs(60);
        for a in ["a", "b", "c", "d,e"] {
            board.register("acedata_balance", a, every);
        }
        let accounts = |q: &Query| -> Vec<String> {
            filter(board.snapshot(), q)
                .tasks
                .into_iter()
                .map(|t| t.account)
                .collect()
        };
        let all = Query::default();
        assert_eq!(accounts(&all).len(), 4);
        for q in [&comma, &repeated] {
            let q = Query {
                states: Vec::new(),
                ..q.clone()
            };
            assert_eq!(accounts(&q), ["a", "b"]);
        }
        // A name with a comma in it is still found by its whole name.
        assert_eq!(
            accounts(&Query::parse(Some("account=d,e")).unwrap()),
            ["d,e"]
        );
    }

    #[test]
    fn an_unknown_state_names_the_valid_ones() {
        let e = Query::parse(Some("state=failing,bogus")).unwrap_err();
        assert_eq!(
            e,
            "unknown state bogus: the states are failing, stale, not_yet_run, ok"
        );
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human_duration(0.1234), "123ms");
        assert_eq!(human_duration(3.25), "3.2s");
        assert_eq!(human_duration(75.0), "1m 15s");
        assert_eq!(human_duration(7300.0), "2h 1m");
        assert_eq!(human_duration(90000.0), "1d 1h");
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn the_header_names_the_shard_and_rows_escape_names() {
        let board = crate::status::StatusBoard::new("/etc/x.yaml");
        let html_of =
            |b: &crate::status::StatusBoard| html(b.snapshot(), &Query::default(), "/metrics");
        assert!(!html_of(&board).contains("<dt>Shard</dt>"));
        board.set_shard(2, 4);
        board.register(
            "acedata_balance",
            "<b>acct</b>",
            std::time::Duration::from_secs(60),
        );
        let page = html_of(&board);
        assert!(page.contains("<dt>Shard</dt><dd>2 of 4</dd>"), "{page}");
        assert!(page.contains("&lt;b&gt;acct&lt;/b&gt;"), "{page}");
        assert!(!page.contains("<b>acct"), "{page}");
        assert!(page.contains("not yet run"), "{page}");
    }

    #[test]
    fn the_page_lists_at_most_html_rows_problems_first_and_json_has_all() {
        let board = crate::status::StatusBoard::new("x");
        let every = std::time::Duration::from_secs(60);
        for i in 0..HTML_ROWS + 5 {
            board.register("acedata_balance", &format!("a{i:05}"), every);
        }
        // The last account fails: it must be on the page although it sorts last.
        let last = format!("a{:05}", HTML_ROWS + 4);
        let e = crate::collector::CollectError::Timeout;
        let now = std::time::SystemTime::now();
        board.register("acedata_balance", &last, every).failed(
            now,
            std::time::Duration::from_millis(5),
            crate::status::ErrorInfo::from_error(&e, &[], now),
            false,
            None,
        );
        let page = html(board.snapshot(), &Query::default(), "/metrics");
        assert_eq!(page.matches("<tr id=").count(), HTML_ROWS);
        let first_row = page.find("<tr id=").unwrap();
        assert!(
            page[first_row..].starts_with(&format!("<tr id=\"{last}/")),
            "failing first"
        );
        assert!(page.contains(&format!(
            "Showing the first {HTML_ROWS} of {} rows",
            HTML_ROWS + 5
        )));
        let all = filter(board.snapshot(), &Query::default());
        assert_eq!(all.tasks.len(), HTML_ROWS + 5, "the JSON view is not cut");
        let few = html(
            board.snapshot(),
            &Query::parse(Some("state=failing")).unwrap(),
            "/metrics",
        );
        assert_eq!(few.matches("<tr id=").count(), 1);
        assert!(!few.contains("Showing the first"));
    }
}
