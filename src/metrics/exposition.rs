//! The `/metrics` body, encoded and compressed once per change and served as shared
//! bytes, gzip-compressed or plain.
//!
//! Every write to the registry moves its generation; a scrape re-encodes only when the
//! generation moved since the cached body was made, and every other scrape gets the
//! same bytes (no allocation, no copy, no compression). Process metrics (CPU, memory)
//! change on their own, so they are re-read at most once per second. A rebuild runs on
//! a thread of its own at a lower CPU priority ([`Exposition::current`]); the
//! registry's locks are held a piece of text at a time, never across compression (see
//! `family.rs`).
//!
//! What a [`Snapshot`] keeps, and what a gzip scrape sends (`gzip.rs` has the framing):
//!
//! ```text
//!              registry text (145 MB at 10,000 accounts)   process text (~2 kB)
//!                          │ compressed once per change       │ each second
//!                          ▼                                  ▼
//! gzip body:  HEADER │ main_deflate (sync-flushed, open) │ process_deflate (final) │ trailer
//!             10 B     ~5 MB                               ~1 kB                     8 B:
//!                                      CRC-32 (main_crc continued over the process text)
//!                                      and length of both texts
//!
//! plain body: `plain` (both texts) while the registry text is at most PLAIN_KEEP
//!             (1 MiB); beyond, both deflate pieces inflated piece by piece as they
//!             are sent (a 145 MB copy would be most of the process's memory).
//! ```
//!
//! Invariants, checked with `debug_assert!` whenever a snapshot is made
//! (`Snapshot::check`):
//! - **Framing.** `main_deflate` ends with a sync flush (byte-aligned, no final block);
//!   `process_deflate` is a finished stream. So header, both, trailer is one member.
//! - **Trailer.** It holds the CRC-32 of the registry text followed by the process
//!   text, and their total length mod 2^32.
//! - **Plain copy.** `plain` is kept exactly when the registry text is at most
//!   [`PLAIN_KEEP`], and is then both texts.
//! - **One body at a time.** While the registry text is rebuilt, the cache holds a
//!   snapshot without one (`generation` is `None`, so no scrape takes it): the old
//!   compressed text is let go before the new one is made. Responses still sending an
//!   old one hold theirs, for at most the server's send timeout.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use flate2::read::DeflateDecoder;
use prometheus::core::Collector as _;
use prometheus::{Encoder, TextEncoder};

use super::gzip;
use super::Registry;

/// How long encoded process metrics are reused.
const PROCESS_TTL: Duration = Duration::from_secs(1);

/// Registry text up to this size is kept plain as well as compressed.
pub const PLAIN_KEEP: usize = 1024 * 1024;

/// Plain text is handed out in pieces of this size when it is inflated on the fly.
const PLAIN_CHUNK: usize = 64 * 1024;

/// The cached exposition of the registry and the process metrics.
pub struct Exposition {
    registry: Registry,
    process: prometheus::Registry,
    cache: RwLock<Arc<Snapshot>>,
    rebuild: Mutex<()>,
    /// Held by the scrape whose rebuild runs; the others wait here without holding a
    /// runtime thread, then share its result.
    turn: tokio::sync::Mutex<()>,
    encodes: AtomicU64,
    /// How many compressed registry texts are alive (see [`Exposition::texts_held`]).
    held: Arc<AtomicUsize>,
    /// Where rebuilds run (see [`Exposition::on_encoder`]); the thread ends with the
    /// exposition.
    encoder: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
}

type Job = Box<dyn FnOnce() + Send>;

/// One encoded exposition. Scrapes share it; it never changes.
pub struct Snapshot {
    /// Raw deflate of the registry's text, sync-flushed (byte-aligned, not final);
    /// empty in the snapshot a rebuild leaves meanwhile.
    main_deflate: Bytes,
    main_crc: crc32fast::Hasher,
    main_len: usize,
    /// The whole plain body (registry text, then process text), when the registry
    /// text is at most [`PLAIN_KEEP`] bytes.
    plain: Option<Bytes>,
    /// The process metrics' text and its final deflate stream.
    process_plain: Bytes,
    process_deflate: Bytes,
    /// CRC-32 and length (mod 2^32) of the whole plain text, little-endian.
    trailer: [u8; gzip::TRAILER_LEN],
    /// The registry generation the text was encoded at; `None` before the first encode.
    generation: Option<u64>,
    /// When the process metrics were read.
    process_at: Option<Instant>,
}

impl Snapshot {
    fn empty() -> Snapshot {
        Snapshot {
            main_deflate: Bytes::new(),
            main_crc: crc32fast::Hasher::new(),
            main_len: 0,
            plain: None,
            process_plain: Bytes::new(),
            process_deflate: Bytes::new(),
            trailer: [0; gzip::TRAILER_LEN],
            generation: None,
            process_at: None,
        }
    }

    /// Length of the plain text.
    pub fn plain_len(&self) -> usize {
        self.main_len + self.process_plain.len()
    }

    /// The gzip body as consecutive pieces (header, two deflate streams, trailer).
    pub fn gzip_parts(&self) -> [Bytes; 4] {
        [
            Bytes::from_static(&gzip::HEADER),
            self.main_deflate.clone(),
            self.process_deflate.clone(),
            Bytes::copy_from_slice(&self.trailer),
        ]
    }

    /// Length of the gzip body.
    pub fn gzip_len(&self) -> usize {
        gzip::HEADER.len()
            + self.main_deflate.len()
            + self.process_deflate.len()
            + gzip::TRAILER_LEN
    }

    /// The gzip body in one piece (copies; the server sends [`Snapshot::gzip_parts`]).
    pub fn gzip(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.gzip_len());
        for part in self.gzip_parts() {
            out.extend_from_slice(&part);
        }
        Bytes::from(out)
    }

    /// The plain text when it is kept whole.
    pub fn plain(&self) -> Option<Bytes> {
        self.plain.clone()
    }

    /// The plain text in pieces: the kept copy, or inflated piece by piece.
    pub fn plain_chunks(&self) -> PlainChunks {
        match &self.plain {
            Some(p) => PlainChunks::Whole(Some(p.clone())),
            None => PlainChunks::Inflate(Box::new(DeflateDecoder::new(
                self.main_deflate
                    .clone()
                    .reader()
                    .chain(self.process_deflate.clone().reader()),
            ))),
        }
    }

    /// The invariants of the module documentation (debug builds).
    fn check(&self) {
        debug_assert!(
            self.main_deflate.ends_with(&gzip::SYNC_MARK),
            "framing: the registry text's deflate ends with a sync flush"
        );
        debug_assert!(
            !self.process_deflate.is_empty(),
            "framing: the process text's deflate is a finished stream"
        );
        debug_assert_eq!(
            self.trailer,
            {
                let mut crc = self.main_crc.clone();
                crc.update(&self.process_plain);
                gzip::trailer(crc.finalize(), self.plain_len())
            },
            "trailer: CRC-32 and length of both texts"
        );
        debug_assert_eq!(
            self.plain.as_ref().map(Bytes::len),
            (self.main_len <= PLAIN_KEEP).then(|| self.plain_len()),
            "plain copy: kept exactly when the registry text is small"
        );
    }

    /// The registry text's compressed bytes (same pointer as long as nothing changed).
    pub fn compressed_main(&self) -> &Bytes {
        &self.main_deflate
    }
}

type Inflater = DeflateDecoder<io::Chain<bytes::buf::Reader<Bytes>, bytes::buf::Reader<Bytes>>>;

/// The plain text of a [`Snapshot`], piece by piece.
pub enum PlainChunks {
    Whole(Option<Bytes>),
    Inflate(Box<Inflater>),
}

impl Iterator for PlainChunks {
    type Item = io::Result<Bytes>;

    fn next(&mut self) -> Option<io::Result<Bytes>> {
        match self {
            PlainChunks::Whole(b) => b.take().map(Ok),
            PlainChunks::Inflate(d) => {
                let mut buf = vec![0; PLAIN_CHUNK];
                let mut filled = 0;
                while filled < buf.len() {
                    match d.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Some(Err(e)),
                    }
                }
                if filled == 0 {
                    return None;
                }
                buf.truncate(filled);
                Some(Ok(Bytes::from(buf)))
            }
        }
    }
}

/// Bytes that count themselves out of [`Exposition::texts_held`] when freed.
struct Counted {
    bytes: Vec<u8>,
    alive: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Feeds the registry's text to the compressor and (while small) a copy.
struct Tee {
    open: gzip::Open,
    plain: Option<Vec<u8>>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.open.write_all(buf)?;
        if let Some(p) = &mut self.plain {
            if p.len() + buf.len() > PLAIN_KEEP {
                self.plain = None;
            } else {
                p.extend_from_slice(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Exposition {
    /// Wrap `registry`; process metrics come from a registry of their own.
    pub fn new(registry: Registry) -> Arc<Self> {
        let process = prometheus::Registry::new();
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        if !pc.desc().is_empty() {
            let _ = process.register(Box::new(pc));
        }
        Arc::new(Exposition {
            registry,
            process,
            cache: RwLock::new(Arc::new(Snapshot::empty())),
            rebuild: Mutex::new(()),
            turn: tokio::sync::Mutex::new(()),
            encodes: AtomicU64::new(0),
            held: Arc::new(AtomicUsize::new(0)),
            encoder: Mutex::new(None),
        })
    }

    /// The registry collectors and self-metrics live in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Force the next scrape to re-encode. Writes to the registry already do; this is
    /// for changes the registry cannot see.
    pub fn mark_dirty(&self) {
        self.registry.touch();
    }

    /// How many compressed registry texts are in memory: the cached one, and older ones
    /// that responses still being sent hold.
    pub fn texts_held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// How many times the registry's text has been encoded and compressed.
    pub fn encodes(&self) -> u64 {
        self.encodes.load(Ordering::Relaxed)
    }

    /// The current exposition text (Prometheus text format 0.0.4). Shared bytes when the
    /// plain text is kept; otherwise inflated into a new buffer.
    pub fn render(&self) -> Bytes {
        let snapshot = self.snapshot();
        if let Some(p) = snapshot.plain() {
            return p;
        }
        let mut out = Vec::with_capacity(snapshot.plain_len());
        for chunk in snapshot.plain_chunks() {
            match chunk {
                Ok(c) => out.extend_from_slice(&c),
                Err(e) => {
                    tracing::error!(error = %e, "cannot inflate the cached exposition");
                    break;
                }
            }
        }
        Bytes::from(out)
    }

    /// The current exposition for the server. A stale one is rebuilt on the encoder
    /// thread, never on the async workers (at 10,000 accounts a rebuild is a second of
    /// CPU); scrapes that arrive meanwhile wait for that rebuild and share it.
    pub async fn current(self: &Arc<Self>) -> Arc<Snapshot> {
        if let Some(s) = self.cached() {
            return s;
        }
        let _turn = self.turn.lock().await;
        if let Some(s) = self.cached() {
            return s;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        self.on_encoder(Box::new(move || {
            let _ = tx.send(this.snapshot());
        }));
        match rx.await {
            Ok(s) => s,
            Err(_) => {
                tracing::error!("the exposition could not be rebuilt");
                self.cache.read().unwrap_or_else(|e| e.into_inner()).clone()
            }
        }
    }

    /// Run `job` on the encoder thread, started (again) when there is none. The thread
    /// runs at a lower CPU priority than the runtime's: on a busy machine the threads
    /// that answer requests get the cores first, and the rebuild the rest.
    fn on_encoder(&self, job: Job) {
        let mut encoder = self.encoder.lock().unwrap_or_else(|e| e.into_inner());
        let job = match encoder.as_ref() {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                // The thread is gone (a rebuild panicked): start another.
                Err(returned) => returned.0,
            },
            None => job,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("encoder".into())
            .spawn(move || {
                crate::priority::lower_current_thread();
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        match spawned {
            Ok(_) => {
                let _ = tx.send(job);
                *encoder = Some(tx);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the encoder thread");
                drop(encoder);
                tokio::task::spawn_blocking(job);
            }
        }
    }

    /// The cached exposition when it is current.
    fn cached(&self) -> Option<Arc<Snapshot>> {
        let c = self.cache.read().unwrap_or_else(|e| e.into_inner());
        (self.fresh(&c) == (true, true)).then(|| c.clone())
    }

    /// The current exposition, encoded at most once per change, on the calling thread
    /// (which it may block for as long as an encode takes: see [`Exposition::current`]).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        if let Some(s) = self.cached() {
            return s;
        }
        // One scrape rebuilds; concurrent ones wait for it and then share its result.
        let _rebuilding = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let mut old = self.cache.read().unwrap_or_else(|e| e.into_inner()).clone();
        let (main_fresh, process_fresh) = self.fresh(&old);
        if main_fresh && process_fresh {
            return old;
        }
        let previous = old.main_deflate.len();
        if !main_fresh {
            // The registry's old text is about to be replaced: let it go now rather
            // than hold two compressed bodies at once (6.5 MB each at 10,000
            // accounts). Scrapes that come meanwhile find nothing fresh and wait on
            // `rebuild`; those still sending the old body keep their own reference.
            let kept = Arc::new(Snapshot {
                process_plain: old.process_plain.clone(),
                process_deflate: old.process_deflate.clone(),
                process_at: old.process_at,
                ..Snapshot::empty()
            });
            *self.cache.write().unwrap_or_else(|e| e.into_inner()) = kept.clone();
            old = kept;
        }
        let generation = self.registry.generation();
        let (main_deflate, main_crc, main_len, main_plain) = if main_fresh {
            let main_plain = old.plain.as_ref().map(|p| p.slice(..old.main_len));
            (
                old.main_deflate.clone(),
                old.main_crc.clone(),
                old.main_len,
                main_plain,
            )
        } else {
            self.encode_main(previous)
        };
        let (process_plain, process_deflate, process_at) = if process_fresh {
            (
                old.process_plain.clone(),
                old.process_deflate.clone(),
                old.process_at,
            )
        } else {
            let plain = self.encode_process();
            let deflate = Bytes::from(gzip::last(&plain));
            (plain, deflate, Some(Instant::now()))
        };
        let mut crc = main_crc.clone();
        crc.update(&process_plain);
        let total = main_len + process_plain.len();
        let trailer = gzip::trailer(crc.finalize(), total);
        let plain = main_plain.map(|m| {
            let mut p = Vec::with_capacity(total);
            p.extend_from_slice(&m);
            p.extend_from_slice(&process_plain);
            Bytes::from(p)
        });
        let snapshot = Arc::new(Snapshot {
            main_deflate,
            main_crc,
            main_len,
            plain,
            process_plain,
            process_deflate,
            trailer,
            generation: if main_fresh {
                old.generation
            } else {
                Some(generation)
            },
            process_at,
        });
        snapshot.check();
        drop(old);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        debug_assert!(
            main_fresh || (cache.generation.is_none() && cache.main_deflate.is_empty()),
            "one body at a time: the cache held no registry text while it was rebuilt"
        );
        *cache = snapshot.clone();
        snapshot
    }

    /// Encode and compress the registry's text: (deflate, CRC, length, plain if small).
    fn encode_main(&self, previous: usize) -> (Bytes, crc32fast::Hasher, usize, Option<Bytes>) {
        self.encodes.fetch_add(1, Ordering::Relaxed);
        // Room for the previous size plus a little growth, so that the buffer is not
        // doubled (and half wasted) on the way.
        let capacity = previous + previous / 16 + 4096;
        let mut tee = Tee {
            open: gzip::Open::new(capacity),
            plain: Some(Vec::new()),
        };
        // Writing to memory fails only on a compressor bug; the text is then cut short.
        if let Err(e) = self.registry.write_to(&mut tee) {
            tracing::error!(error = %e, "cannot compress the exposition");
        }
        // The process metrics' stream follows this one (see `gzip.rs`).
        let closed = tee.open.close().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot compress the exposition");
            gzip::Closed::empty()
        });
        let (mut deflate, crc, len) = (closed.deflate, closed.crc, closed.len);
        if deflate.capacity() > deflate.len() + deflate.len() / 8 + 4096 {
            deflate.shrink_to_fit();
        }
        crate::heap::release_freed();
        self.held.fetch_add(1, Ordering::AcqRel);
        let deflate = Bytes::from_owner(Counted {
            bytes: deflate,
            alive: self.held.clone(),
        });
        (deflate, crc, len, tee.plain.map(Bytes::from))
    }

    /// Whether the cached registry text and the cached process text are current.
    fn fresh(&self, c: &Snapshot) -> (bool, bool) {
        (
            c.generation == Some(self.registry.generation()),
            c.process_at.is_some_and(|t| t.elapsed() < PROCESS_TTL),
        )
    }

    fn encode_process(&self) -> Bytes {
        let mut buf = Vec::with_capacity(2048);
        if let Err(e) = TextEncoder::new().encode(&self.process.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode process metrics");
        }
        Bytes::from(buf)
    }
}
