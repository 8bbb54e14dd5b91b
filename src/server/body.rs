//! Response bodies: one piece of bytes, the gzip exposition's pieces, or the plain
//! exposition inflated piece by piece while it is sent. The length is always known,
//! so every response carries `Content-Length`.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::metrics::PlainChunks;

/// A response body of known length.
pub enum Body {
    Parts(VecDeque<Bytes>, u64),
    Inflate(PlainChunks, u64),
}

impl Body {
    /// A body of one piece.
    pub fn full(bytes: Bytes) -> Body {
        Body::parts([bytes])
    }

    /// A body of consecutive pieces.
    pub fn parts(parts: impl IntoIterator<Item = Bytes>) -> Body {
        let parts: VecDeque<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let len = parts.iter().map(|p| p.len() as u64).sum();
        Body::Parts(parts, len)
    }

    /// The plain exposition, inflated as it is sent; `len` is its length.
    pub fn inflate(chunks: PlainChunks, len: usize) -> Body {
        Body::Inflate(chunks, len as u64)
    }

    fn remaining(&self) -> u64 {
        match self {
            Body::Parts(_, n) | Body::Inflate(_, n) => *n,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let next = match self.get_mut() {
            Body::Parts(parts, remaining) => parts.pop_front().map(|p| {
                *remaining -= p.len() as u64;
                Ok(p)
            }),
            Body::Inflate(chunks, remaining) => {
                if *remaining == 0 {
                    None
                } else {
                    match chunks.next() {
                        Some(Ok(c)) if c.len() as u64 <= *remaining => {
                            *remaining -= c.len() as u64;
                            Some(Ok(c))
                        }
                        Some(Err(e)) => Some(Err(e)),
                        // Shorter or longer than announced: never send a wrong length.
                        _ => Some(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "cached exposition does not inflate to its length",
                        ))),
                    }
                }
            }
        };
        Poll::Ready(next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

/// Whether an `Accept-Encoding` header value accepts gzip: `gzip` (or `x-gzip`) with
/// a q-value above 0, or else `*` with a q-value above 0 (RFC 9110, section 12.5.3).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut gzip = None;
    let mut any = None;
    for item in accept_encoding.split(',') {
        let mut params = item.split(';');
        let coding = params.next().unwrap_or("").trim();
        let mut q = 1.0;
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    // A malformed q-value accepts nothing rather than everything.
                    q = v.trim().parse::<f64>().unwrap_or(0.0);
                }
            }
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.map_or(q, |g: f64| g.max(q)));
        } else if coding == "*" {
            any = Some(q);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::{accepts_gzip, Body};
    use crate::metrics::{Exposition, GaugeFamily, Registry, PLAIN_KEEP};
    use http_body_util::BodyExt;
    use hyper::body::Body as _;

    /// An exposition over 1 MiB is sent plain by inflating it piece by piece: exactly
    /// the announced length, exactly the text.
    #[tokio::test]
    async fn large_plain_body_is_inflated_to_its_exact_length() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_amount", "Amount.", &["package"]);
        let exp = Exposition::new(registry);
        for a in 0..3000 {
            fam.replace(
                &format!("account-{a}"),
                (0..10).map(|p| (vec![format!("package-{p}")], f64::from(p))),
            );
        }
        let snapshot = exp.snapshot();
        assert!(snapshot.plain().is_none() && snapshot.plain_len() > PLAIN_KEEP);
        let body = Body::inflate(snapshot.plain_chunks(), snapshot.plain_len());
        assert_eq!(body.size_hint().exact(), Some(snapshot.plain_len() as u64));
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(sent, exp.render());
        let gz = Body::parts(snapshot.gzip_parts());
        assert_eq!(gz.size_hint().exact(), Some(snapshot.gzip_len() as u64));
        assert_eq!(gz.collect().await.unwrap().to_bytes(), snapshot.gzip());
    }

    #[test]
    fn accept_encoding_q_values() {
        for yes in [
            "gzip",
            "GZIP",
            "deflate, gzip",
            "gzip;q=0.5",
            "gzip; q=1.0, identity; q=0.5",
            "*",
            "br;q=1, *;q=0.1",
            "x-gzip",
            "identity;q=0, gzip",
        ] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in [
            "",
            "identity",
            "gzip;q=0",
            "gzip; q=0.000",
            "deflate, br",
            "*;q=0",
            "gzip;q=0, *",
            "gzip;q=zero",
            "gzipx",
        ] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }
}
