//! Fingerprints of account configurations: what a reload compares to tell which
//! accounts changed, so that the previous configuration need not be kept (at 10,000
//! accounts it is megabytes; a fingerprint is 16 bytes).
//!
//! A fingerprint is two SipHash digests under keys drawn at random once per process
//! (std's `RandomState`) over a canonical encoding: a vendor feeds every key of an
//! account in a fixed order, each as its name then its value through [`Hash`], whose
//! encodings of strings, sequences and options are prefix-free. Equal configurations
//! give equal fingerprints; different ones collide with a chance of about 2^-128, which
//! would keep an account's collectors through one change. An inline secret is fed as
//! its value: hashed under a key no one outside the process knows, it cannot be
//! checked against guesses, and the fingerprint is never logged or shown.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

/// The digest of one account's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u64; 2]);

/// Builds a [`Fingerprint`] from an account's keys.
pub struct Fingerprinter {
    digests: [DefaultHasher; 2],
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter::new()
    }
}

impl Fingerprinter {
    /// A fingerprint of nothing yet, under this process's keys.
    pub fn new() -> Fingerprinter {
        static KEYS: OnceLock<[RandomState; 2]> = OnceLock::new();
        let keys = KEYS.get_or_init(|| [RandomState::new(), RandomState::new()]);
        Fingerprinter {
            digests: [keys[0].build_hasher(), keys[1].build_hasher()],
        }
    }

    /// Feed the key `name` with `value`.
    pub fn key(&mut self, name: &str, value: &(impl Hash + ?Sized)) -> &mut Self {
        for d in &mut self.digests {
            name.hash(d);
            value.hash(d);
        }
        self
    }

    /// Feed the number `name` (`-0` and `0` are the same number, as `==` says; a
    /// configured number is never NaN).
    pub fn number(&mut self, name: &str, value: Option<f64>) -> &mut Self {
        self.key(name, &value.map(|v| if v == 0.0 { 0 } else { v.to_bits() }))
    }

    /// The fingerprint of everything fed.
    pub fn finish(&self) -> Fingerprint {
        Fingerprint(self.digests.each_ref().map(Hasher::finish))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(feed: impl FnOnce(&mut Fingerprinter)) -> Fingerprint {
        let mut f = Fingerprinter::new();
        feed(&mut f);
        f.finish()
    }

    #[test]
    fn fingerprints_tell_every_difference_and_only_differences() {
        let base = of(|f| {
            f.key("a", "x").key("b", "y").number("n", Some(1.0));
        });
        assert_eq!(
            base,
            of(|f| {
                f.key("a", "x").key("b", "y").number("n", Some(1.0));
            })
        );
        for other in [
            of(|f| {
                f.key("a", "x").key("b", "z").number("n", Some(1.0));
            }),
            // The same bytes split differently.
            of(|f| {
                f.key("a", "xy").key("b", "").number("n", Some(1.0));
            }),
            of(|f| {
                f.key("b", "y").key("a", "x").number("n", Some(1.0));
            }),
            of(|f| {
                f.key("a", "x").key("b", "y").number("n", None);
            }),
            of(|f| {
                f.key("a", "x").key("b", "y").number("n", Some(1.5));
            }),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(
            of(|f| {
                f.number("n", Some(0.0));
            }),
            of(|f| {
                f.number("n", Some(-0.0));
            })
        );
        assert_ne!(
            of(|f| {
                f.number("n", Some(0.0));
            }),
            of(|f| {
                f.number("n", None);
            })
        );
    }
}
