//! Which accounts this replica polls: `--shard` of `--total-shards`, as kube-state-metrics
//! splits its objects. An account belongs to shard
//! `jump_hash(fnv1a64("<provider>/<account name>"), total_shards)`: FNV-1a 64-bit over the
//! name, then Lamping and Veach's jump consistent hash, so that going from N to N + 1
//! shards moves about 1/(N + 1) of the accounts. Both functions are fixed by pinned test
//! vectors: changing them would move accounts between replicas on an upgrade.

use std::fmt;

/// This replica's part of the accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    total: u32,
}

/// A `--shard` / `--total-shards` combination that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("--total-shards must be at least 1")]
    NoShards,
    #[error("--shard={index} is out of range for --total-shards={total} (valid: 0 to {last})", last = total - 1)]
    OutOfRange { index: u32, total: u32 },
    #[error("--shard={0:?} is neither a shard index (0, 1, …) nor `auto`")]
    NotAnIndex(String),
    #[error(
        "--shard=auto: the host name {0:?} does not end in an ordinal (like balance-exporter-2)"
    )]
    NoOrdinal(String),
    #[error("--shard=auto: cannot read the host name: {0}")]
    NoHostName(String),
}

impl Shard {
    /// No sharding: one shard that owns every account.
    pub const SINGLE: Shard = Shard { index: 0, total: 1 };

    /// Shard `index` of `total`.
    pub fn new(index: u32, total: u32) -> Result<Shard, ShardError> {
        if total == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= total {
            return Err(ShardError::OutOfRange { index, total });
        }
        Ok(Shard { index, total })
    }

    /// From the flags: `shard` is an index or `auto` (the ordinal at the end of
    /// `host_name()`).
    pub fn from_flags(
        shard: &str,
        total: u32,
        host_name: impl FnOnce() -> Result<String, String>,
    ) -> Result<Shard, ShardError> {
        let index = if shard == "auto" {
            let host = host_name().map_err(ShardError::NoHostName)?;
            ordinal(&host).ok_or(ShardError::NoOrdinal(host))?
        } else {
            shard
                .parse::<u32>()
                .map_err(|_| ShardError::NotAnIndex(shard.to_string()))?
        };
        Shard::new(index, total)
    }

    /// The 0-based index of this shard.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Whether this shard polls `provider`'s account `account`.
    pub fn owns(&self, provider: &str, account: &str) -> bool {
        self.total == 1 || shard_of(provider, account, self.total) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.index, self.total)
    }
}

/// The shard that owns `provider`'s account `account` among `total` shards.
pub fn shard_of(provider: &str, account: &str, total: u32) -> u32 {
    let mut key = Vec::with_capacity(provider.len() + 1 + account.len());
    key.extend_from_slice(provider.as_bytes());
    key.push(b'/');
    key.extend_from_slice(account.as_bytes());
    jump_hash(fnv1a64(&key), total)
}

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm" (2014).
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// The ordinal at the end of a host name: `balance-exporter-2` → 2 (a domain is
/// ignored: `balance-exporter-2.example` → 2).
pub fn ordinal(host: &str) -> Option<u32> {
    let name = host.trim().split('.').next()?;
    let (_, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The host name: `$HOSTNAME` (a Kubernetes pod's name) or else the kernel's.
pub fn host_name() -> Result<String, String> {
    if let Some(h) = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return Ok(h.trim().to_string());
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently (a few lines of Python, integer and IEEE double
    /// arithmetic as in the paper's C++), and pinned: an upgrade must never move
    /// accounts.
    #[test]
    fn pinned_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"acedata/main"), 0xc8127f9db72401a0);
        assert_eq!(fnv1a64(b"yeastar/partner"), 0x17603a0ed0d74dbf);
        assert_eq!(jump_hash(0, 10), 0);
        assert_eq!(jump_hash(1, 10), 6);
        assert_eq!(jump_hash(0xdeadbeef, 1000), 285);
        let cases: [(&str, &str, [u32; 6]); 4] = [
            ("acedata", "main", [0, 1, 1, 1, 6, 83]),
            ("yeastar", "partner", [0, 0, 0, 0, 5, 54]),
            ("acedata", "account-1", [0, 0, 0, 3, 5, 19]),
            ("acedata", "account-42", [0, 1, 1, 1, 6, 93]),
        ];
        for (provider, account, want) in cases {
            for (total, want) in [1, 2, 3, 4, 10, 100].into_iter().zip(want) {
                assert_eq!(
                    shard_of(provider, account, total),
                    want,
                    "{provider}/{account} of {total}"
                );
            }
        }
    }

    #[test]
    fn from_flags_and_host_names() {
        let host = |h: &'static str| move || Ok::<_, String>(h.to_string());
        assert_eq!(Shard::from_flags("2", 3, host("x")), Shard::new(2, 3));
        assert_eq!(
            Shard::from_flags("auto", 3, host("balance-exporter-2")),
            Shard::new(2, 3)
        );
        assert_eq!(
            Shard::from_flags("auto", 3, host("balance-exporter-0.svc.example")),
            Shard::new(0, 3)
        );
        assert_eq!(
            Shard::from_flags("3", 3, host("x")),
            Err(ShardError::OutOfRange { index: 3, total: 3 })
        );
        assert_eq!(
            Shard::from_flags("auto", 2, host("balance-exporter-2")),
            Err(ShardError::OutOfRange { index: 2, total: 2 })
        );
        assert_eq!(
            Shard::from_flags("auto", 3, host("balance-exporter")),
            Err(ShardError::NoOrdinal("balance-exporter".into()))
        );
        assert_eq!(
            Shard::from_flags("-1", 3, host("x")),
            Err(ShardError::NotAnIndex("-1".into()))
        );
        assert_eq!(Shard::new(0, 0), Err(ShardError::NoShards));
        let e = Shard::from_flags("5", 3, host("x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--shard=5") && e.contains("--total-shards=3"),
            "{e}"
        );
        assert!(Shard::SINGLE.owns("acedata", "anything"));
    }

    /// Every account has exactly one owner, and adding a shard moves about 1/(N+1).
    #[test]
    fn one_owner_and_few_moves() {
        let names: Vec<String> = (0..3000).map(|i| format!("account-{i}")).collect();
        for total in 1..=5 {
            let shards: Vec<Shard> = (0..total).map(|i| Shard::new(i, total).unwrap()).collect();
            for n in &names {
                assert_eq!(shards.iter().filter(|s| s.owns("acedata", n)).count(), 1);
            }
        }
        let moved = names
            .iter()
            .filter(|n| shard_of("acedata", n, 3) != shard_of("acedata", n, 4))
            .count();
        assert!((600..=900).contains(&moved), "{moved} of 3000 moved");
    }
}
