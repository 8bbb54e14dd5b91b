//! Metric plumbing shared by every provider: a compact registry of labelled gauge and
//! counter families written straight to the text format, gauge families that know which
//! label sets each account owns, the exporter's self-metrics, and the cached exposition.
//!
//! The `prometheus` crate keeps a full metric object per series (a copy of the family's
//! descriptor and HELP text, the label pairs as owned strings) and copies every series
//! again to encode it. Here a series is the label values as small numbers (every
//! distinct label value is stored once, in [`symbols`]) and an `f64`, in sorted
//! arrays: 4 bytes per label and 8 for the value. With a thousand accounts (about
//! 63,000 series) that is a few megabytes instead of tens. The text is byte for byte
//! what `prometheus::TextEncoder` writes for the same series (a test compares both).
//! Process metrics still come from the `prometheus` crate's process collector.
//!
//! One file per owner: [`symbols`] (label values), [`series`] (one family's series),
//! [`family`] (a family's lookups and text), [`registry`] (the families), [`handles`]
//! (what collectors write through), [`exposition`] (the cached body), [`gzip`] (its
//! framing).

#[cfg(test)]
mod count;
mod exposition;
mod family;
mod gzip;
mod handles;
mod keys;
mod prefilled;
mod registry;
mod series;
mod symbols;
mod text;

pub use exposition::{Exposition, PlainChunks, Snapshot, PLAIN_KEEP};
pub use family::INLINE_LABELS;
pub use handles::{Counter, CounterVec, Gauge, GaugeFamily, GaugeVec};
pub use registry::Registry;

/// Appended to the HELP text of every metric filled from upstream.
pub const CACHED_HELP_SUFFIX: &str =
    " (cached: refreshed on the poll interval, not at scrape time)";

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn text(e: &Exposition) -> String {
        String::from_utf8(e.render().to_vec()).unwrap()
    }

    fn encoded(r: &Registry) -> String {
        let mut out = Vec::new();
        r.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn replace_removes_vanished_label_sets_of_that_account_only() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_amount", "Amount.", &["package"]);
        let exp = Exposition::new(registry);
        fam.replace("a", [(vec!["p1".into()], 1.0), (vec!["p2".into()], 2.0)]);
        fam.replace("b", [(vec!["p1".into()], 3.0)]);
        fam.replace("a", [(vec!["p2".into()], 5.0)]);
        let t = text(&exp);
        assert!(!t.contains(r#"t_amount{account="a",package="p1"}"#), "{t}");
        assert!(t.contains(r#"t_amount{account="a",package="p2"} 5"#), "{t}");
        assert!(t.contains(r#"t_amount{account="b",package="p1"} 3"#), "{t}");
        assert!(t.contains("refreshed on the poll interval"), "{t}");
        fam.clear("b");
        assert!(!text(&exp).contains(r#"account="b""#));
    }

    #[test]
    fn replace_keeps_accounts_whose_name_extends_another() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_v", "V.", &["level"]);
        fam.replace("a", [(vec!["1".into()], 1.0)]);
        fam.replace("a-b", [(vec!["1".into()], 2.0)]);
        fam.replace("a\"", [(vec!["1".into()], 3.0)]);
        fam.clear("a");
        let t = encoded(&registry);
        assert!(!t.contains(r#"account="a",level"#), "{t}");
        assert!(t.contains(r#"t_v{account="a-b",level="1"} 2"#), "{t}");
        assert!(t.contains(r#"t_v{account="a\"",level="1"} 3"#), "{t}");
    }

    #[test]
    fn scrape_reuses_bytes_until_something_changes() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_value", "Value.", &[]);
        let exp = Exposition::new(registry);
        fam.set("a", 1.0);
        let first = exp.render();
        let again = exp.render();
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "no re-encode without a change"
        );
        fam.set("a", 2.0);
        let third = exp.render();
        assert_ne!(first.as_ptr(), third.as_ptr());
        assert!(String::from_utf8_lossy(&third).contains("t_value{account=\"a\"} 2"));
        exp.mark_dirty();
        assert_ne!(third.as_ptr(), exp.render().as_ptr());
    }

    /// The same series through `prometheus`' own registry and encoder give the same text.
    #[test]
    fn text_matches_the_prometheus_encoder() {
        let ours = Registry::new();
        let theirs = prometheus::Registry::new();
        let specs: [(&str, &str, &[&str]); 4] = [
            ("t_zeta", "Last family.", &["b", "a"]),
            (
                "t_alpha",
                "Help with \\ backslash\nand newline.",
                &["account", "package_id", "package"],
            ),
            ("t_plain", "", &[]),
            ("t_empty", "Never written.", &["x"]),
        ];
        let mut pairs = Vec::new();
        for (name, help, labels) in specs {
            let g = GaugeVec::new(&ours, name, help, labels);
            let opts = prometheus::Opts::new(name, if help.is_empty() { "x" } else { help });
            let p = prometheus::GaugeVec::new(opts, labels).unwrap();
            theirs.register(Box::new(p.clone())).unwrap();
            pairs.push((g, p));
        }
        let values: &[&[&str]] = &[
            &["b2", "a1"],
            &["b1", "a1"],
            &["b1", "a10"],
            &["b\"q\\\n", "a"],
            &["", "a1"],
        ];
        for (i, v) in values.iter().enumerate() {
            let x = [1.0, 0.1, -2.5, 1e21, 123456.789][i];
            pairs[0].0.with_label_values(v).set(x);
            pairs[0].1.with_label_values(v).set(x);
        }
        for (i, v) in [
            ["acc", "p2", "Pro"],
            ["acc", "p1", "Basic"],
            ["ab", "p1", "Z"],
        ]
        .iter()
        .enumerate()
        {
            pairs[1].0.with_label_values(v).set(i as f64 * 1.5);
            pairs[1].1.with_label_values(v).set(i as f64 * 1.5);
        }
        pairs[2].0.with_label_values(&[]).set(f64::NAN);
        pairs[2].1.with_label_values::<&str>(&[]).set(f64::NAN);
        let counter = CounterVec::new(&ours, "t_count_total", "Counts.", &["reason"]);
        let pc = prometheus::IntCounterVec::new(
            prometheus::Opts::new("t_count_total", "Counts."),
            &["reason"],
        )
        .unwrap();
        theirs.register(Box::new(pc.clone())).unwrap();
        for r in ["timeout", "decode", "timeout"] {
            counter.with_label_values(&[r]).inc();
            pc.with_label_values(&[r]).inc();
        }
        counter.with_label_values(&["connect"]);
        pc.with_label_values(&["connect"]);

        let mut expected = Vec::new();
        TextEncoder::new()
            .encode(&theirs.gather(), &mut expected)
            .unwrap();
        let expected = String::from_utf8(expected)
            .unwrap()
            // `prometheus` insists on a HELP text; ours may be empty.
            .replace("# HELP t_plain x\n", "");
        assert_eq!(encoded(&ours), expected);
    }

    #[test]
    fn label_values_are_forgotten_with_their_last_series() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_a", "A.", &["package"]);
        let g = GaugeVec::new(&registry, "t_b", "B.", &["account"]);
        fam.replace("x", [(vec!["p1".into()], 1.0), (vec!["p2".into()], 2.0)]);
        fam.replace("x", [(vec!["p1".into()], 3.0)]);
        g.with_label_values(&["x"]).set(1.0);
        let known = |r: &Registry| {
            let s = r.symbols.lock().unwrap();
            let mut v: Vec<String> = s.ids.keys().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(known(&registry), ["p1", "x"]);
        fam.clear("x");
        assert_eq!(known(&registry), ["x"]);
        g.reset();
        assert!(known(&registry).is_empty());
        fam.replace("y", [(vec!["p3".into()], 1.0)]);
        assert_eq!(
            encoded(&registry),
            "# HELP t_a A. (cached: refreshed on the poll interval, not at scrape time)\n\
             # TYPE t_a gauge\nt_a{account=\"y\",package=\"p3\"} 1\n"
        );
    }

    #[test]
    fn removed_and_reset_series_disappear() {
        let registry = Registry::new();
        let g = GaugeVec::new(&registry, "t_g", "G.", &["provider", "account"]);
        g.with_label_values(&["p", "a"]).set(1.0);
        g.with_label_values(&["p", "b"]).set(2.0);
        assert!(g.remove_label_values(&["p", "a"]));
        assert!(!g.remove_label_values(&["p", "a"]));
        assert_eq!(
            encoded(&registry),
            "# HELP t_g G.\n# TYPE t_g gauge\nt_g{account=\"b\",provider=\"p\"} 2\n"
        );
        g.reset();
        assert_eq!(encoded(&registry), "");
    }

    /// Label sets wider than the inline key: six and nine labels, written as
    /// `prometheus::TextEncoder` writes them, replaced and removed per account.
    #[test]
    fn families_of_any_width_match_the_prometheus_encoder() {
        let ours = Registry::new();
        let theirs = prometheus::Registry::new();
        let six = [
            "account",
            "application_id",
            "service",
            "service_name",
            "type",
            "scope",
        ];
        let nine = ["i", "h", "g", "f", "e", "d", "c", "b", "a"];
        let g6 = GaugeVec::new(&ours, "t_info", "Six labels.", &six);
        let g9 = GaugeVec::new(&ours, "t_wide", "Nine labels.", &nine);
        let p6 = prometheus::GaugeVec::new(prometheus::Opts::new("t_info", "Six labels."), &six)
            .unwrap();
        let p9 = prometheus::GaugeVec::new(prometheus::Opts::new("t_wide", "Nine labels."), &nine)
            .unwrap();
        theirs.register(Box::new(p6.clone())).unwrap();
        theirs.register(Box::new(p9.clone())).unwrap();
        for (i, v) in [
            ["main", "app-2", "suno", "Suno", "Usage", "Global"],
            [
                "main",
                "app-1",
                "midjourney",
                "Midjourney",
                "Usage",
                "Individual",
            ],
            [
                "alt",
                "app-1",
                "midjourney",
                "Mid\"journey",
                "Period",
                "Individual",
            ],
        ]
        .iter()
        .enumerate()
        {
            g6.with_label_values(v).set(1.0 + i as f64);
            p6.with_label_values(v).set(1.0 + i as f64);
        }
        let w: Vec<String> = (0..9).map(|i| format!("v{}", 9 - i)).collect();
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        g9.with_label_values(&w).set(0.5);
        p9.with_label_values(&w).set(0.5);
        let mut expected = Vec::new();
        TextEncoder::new()
            .encode(&theirs.gather(), &mut expected)
            .unwrap();
        assert_eq!(encoded(&ours), String::from_utf8(expected).unwrap());
        assert!(!g6.remove_label_values(&six.map(|_| "x")));
        assert!(g6.remove_label_values(&[
            "alt",
            "app-1",
            "midjourney",
            "Mid\"journey",
            "Period",
            "Individual"
        ]));
        g6.reset();
        g9.reset();
        assert_eq!(encoded(&ours), "");
        assert!(ours.symbols.lock().unwrap().ids.is_empty());

        let fam = GaugeFamily::new(&ours, "t_fam", "F.", &["b", "c", "d", "e", "f"]);
        let extra = |x: &str| {
            vec![
                x.to_string(),
                "c".into(),
                "d".into(),
                "e".into(),
                "f".into(),
            ]
        };
        fam.replace("acc", [(extra("1"), 1.0), (extra("2"), 2.0)]);
        fam.replace("acc2", [(extra("1"), 3.0)]);
        fam.replace("acc", [(extra("2"), 4.0)]);
        let t = encoded(&ours);
        assert!(!t.contains(r#"t_fam{account="acc",b="1""#), "{t}");
        assert!(
            t.contains(r#"t_fam{account="acc",b="2",c="c",d="d",e="e",f="f"} 4"#),
            "{t}"
        );
        assert!(
            t.contains(r#"t_fam{account="acc2",b="1",c="c",d="d",e="e",f="f"} 3"#),
            "{t}"
        );
    }

    /// While the encoder hands a piece of text to its sink (the compressor, which may
    /// take long), writes to the family being encoded and new label values go through:
    /// the locks are held for a piece, never across the sink.
    #[test]
    fn writes_never_wait_for_the_sink_of_an_encode() {
        use std::sync::mpsc;
        use std::time::Duration;
        struct Stuck {
            entered: mpsc::Sender<()>,
            release: mpsc::Receiver<()>,
            text: Vec<u8>,
        }
        impl std::io::Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.text.is_empty() {
                    let _ = self.entered.send(());
                    let _ = self.release.recv();
                }
                self.text.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_amount", "Amount.", &["package"]);
        let errors = CounterVec::prefilled(
            &registry,
            "t_errors_total",
            "Errors.",
            &["account", "reason"],
            &["a", "b"],
        );
        for a in 0..400 {
            let account = format!("account-{a:03}");
            fam.replace(&account, (0..10).map(|p| (vec![format!("p{p}")], 1.0)));
            errors.with_label_values(&[&account, "a"]).inc();
        }
        let (entered, entered_rx) = mpsc::channel();
        let (release_tx, release) = mpsc::channel();
        let encoder = {
            let registry = registry.clone();
            std::thread::spawn(move || {
                let mut sink = Stuck {
                    entered,
                    release,
                    text: Vec::new(),
                };
                registry.write_to(&mut sink).unwrap();
                String::from_utf8(sink.text).unwrap()
            })
        };
        entered_rx.recv().unwrap();
        // The sink is stuck in the middle of `t_amount` (its text is ~250 kB).
        let (done_tx, done) = mpsc::channel();
        let writer = std::thread::spawn(move || {
            fam.replace("account-000", [(vec!["p0".to_string()], 5.0)]);
            fam.replace("account-new", [(vec!["p-new".to_string()], 2.0)]);
            fam.clear("account-399");
            errors.with_label_values(&["account-001", "b"]).inc();
            done_tx.send(()).unwrap();
        });
        let waited = done.recv_timeout(Duration::from_secs(20));
        release_tx.send(()).unwrap();
        writer.join().unwrap();
        let text = encoder.join().unwrap();
        assert!(waited.is_ok(), "a write waited for the encoder's sink");
        // The encode went on after the writes, over the family as it then was.
        assert!(text.contains("t_amount{account=\"account-398\",package=\"p9\"} 1\n"));
        assert!(!text.contains("t_amount{account=\"account-399\""));
        assert!(text.contains("t_errors_total{account=\"account-001\",reason=\"b\"} 1\n"));
    }

    /// Scrapes that find the exposition stale together share one rebuild.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scrapes_share_one_rebuild() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_amount", "Amount.", &["package"]);
        let exp = Exposition::new(registry);
        for round in 1..=3 {
            for a in 0..300 {
                let series = (0..10).map(|p| (vec![format!("p{p}")], f64::from(round)));
                fam.replace(&format!("account-{a}"), series);
            }
            let before = exp.encodes();
            let scrapes: Vec<_> = (0..8)
                .map(|_| {
                    let exp = exp.clone();
                    tokio::spawn(async move { exp.current().await })
                })
                .collect();
            let mut snapshots = Vec::new();
            for s in scrapes {
                snapshots.push(s.await.unwrap());
            }
            assert_eq!(exp.encodes(), before + 1, "round {round}");
            assert!(snapshots
                .iter()
                .all(|s| s.compressed_main().as_ptr() == snapshots[0].compressed_main().as_ptr()));
        }
    }

    fn gunzip(body: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .expect("a valid gzip body");
        out
    }

    /// Small and large (inflated on demand) expositions: the gzip body gunzips to the
    /// plain text, both with process metrics appended.
    #[test]
    fn gzip_body_gunzips_to_the_plain_text() {
        for accounts in [3, 3000] {
            let registry = Registry::new();
            let fam = GaugeFamily::new(&registry, "t_amount", "Amount.", &["package"]);
            let exp = Exposition::new(registry);
            for a in 0..accounts {
                let series = (0..10).map(|p| (vec![format!("package-{p}")], p as f64 * 1.5));
                fam.replace(&format!("account-{a}"), series);
            }
            let snap = exp.snapshot();
            assert_eq!(snap.plain().is_some(), accounts == 3);
            let plain = exp.render();
            assert_eq!(plain.len(), snap.plain_len());
            let gz = snap.gzip();
            assert_eq!(gz.len(), snap.gzip_len());
            assert_eq!(gunzip(&gz), plain.to_vec());
            let mut chunked = Vec::new();
            for c in snap.plain_chunks() {
                chunked.extend_from_slice(&c.unwrap());
            }
            assert_eq!(chunked, plain.to_vec());
            assert!(String::from_utf8_lossy(&plain)
                .contains("t_amount{account=\"account-2\",package=\"package-9\"} 13.5"));
            if accounts > 3 {
                assert!(plain.len() > PLAIN_KEEP, "{}", plain.len());
                assert!(
                    gz.len() * 5 < plain.len(),
                    "{} vs {}",
                    gz.len(),
                    plain.len()
                );
            }
        }
    }

    /// A scrape of an unchanged registry compresses nothing: same bytes, same count.
    #[test]
    fn unchanged_exposition_is_never_compressed_again() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_value", "Value.", &[]);
        let exp = Exposition::new(registry);
        fam.set("a", 1.0);
        let first = exp.snapshot();
        assert_eq!(exp.encodes(), 1);
        for _ in 0..5 {
            let again = exp.snapshot();
            assert_eq!(exp.encodes(), 1);
            // Even when the process metrics were refreshed meanwhile, the registry's
            // compressed text is the same allocation.
            assert_eq!(
                first.compressed_main().as_ptr(),
                again.compressed_main().as_ptr()
            );
        }
        fam.set("a", 2.0);
        let changed = exp.snapshot();
        assert_eq!(exp.encodes(), 2);
        assert_ne!(
            first.compressed_main().as_ptr(),
            changed.compressed_main().as_ptr()
        );
        assert!(
            String::from_utf8_lossy(&gunzip(&changed.gzip())).contains("t_value{account=\"a\"} 2")
        );
    }
}
