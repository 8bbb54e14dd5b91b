//! gzip framing (RFC 1952) around raw deflate pieces compressed separately.
//!
//! A gzip member is a 10-byte header, one raw deflate stream, and an 8-byte trailer:
//! the CRC-32 and the length (mod 2^32) of the uncompressed text, little-endian.
//! Deflate blocks concatenate: a stream ended by a *sync flush* (an empty stored
//! block, `00 00 ff ff`, which leaves the output byte-aligned and sets no final bit)
//! can be followed by the blocks of another stream compressed on its own, as long as
//! the last piece ends with a final block. So the exposition compresses the registry's
//! text once ([`Open`], closed by a sync flush) and the small process-metrics text
//! every second ([`last`], a finished stream), and serves
//!
//! ```text
//! HEADER | Open piece | last piece | trailer(CRC-32 and length of both texts)
//! ```
//!
//! without ever compressing the registry's text again. The CRC of both texts is the
//! registry text's CRC state continued over the process text ([`crc32fast::Hasher`]
//! is cloned, not recomputed).

use std::io::{self, Write};

use flate2::write::DeflateEncoder;
use flate2::Compression;

/// A gzip member header: deflate, no flags, no time, no extra flags, unknown OS.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Length of the trailer.
pub const TRAILER_LEN: usize = 8;

/// What a sync flush appends: an empty stored block.
pub const SYNC_MARK: [u8; 4] = [0, 0, 0xff, 0xff];

/// Compression level: the fast end, since at 10,000 accounts the text is 145 MB and is
/// compressed again whenever a poll changed something. With zlib-rs level 2 took the
/// same time as level 1 there (0.6–0.7 s) and made a third less (5.1 MB, not 7.6 MB).
fn level() -> Compression {
    Compression::new(2)
}

/// A raw deflate piece that more pieces may follow, with the CRC-32 and length of the
/// text written to it.
pub struct Open {
    deflate: DeflateEncoder<Vec<u8>>,
    crc: crc32fast::Hasher,
    len: usize,
}

/// A closed [`Open`] piece.
pub struct Closed {
    /// Raw deflate, ended by a sync flush: byte-aligned, no final block.
    pub deflate: Vec<u8>,
    /// CRC-32 state of the text (to be continued over the pieces that follow).
    pub crc: crc32fast::Hasher,
    /// Length of the text.
    pub len: usize,
}

impl Closed {
    /// The piece of no text: one empty stored block (a header byte, then the mark).
    pub fn empty() -> Closed {
        Closed {
            deflate: [0, 0, 0, 0xff, 0xff].to_vec(),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }
}

impl Open {
    /// An empty piece whose output buffer starts with `capacity` bytes.
    pub fn new(capacity: usize) -> Open {
        Open {
            deflate: DeflateEncoder::new(Vec::with_capacity(capacity), level()),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    /// End the piece with a sync flush, so that another piece can follow it.
    pub fn close(mut self) -> io::Result<Closed> {
        self.deflate.flush()?;
        let deflate = std::mem::take(self.deflate.get_mut());
        debug_assert!(
            deflate.ends_with(&SYNC_MARK),
            "a sync-flushed piece ends with an empty stored block"
        );
        Ok(Closed {
            deflate,
            crc: self.crc,
            len: self.len,
        })
    }
}

impl Write for Open {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.deflate.write_all(buf)?;
        self.crc.update(buf);
        self.len += buf.len();
        Ok(buf.len())
    }

    /// Nothing: a flush of the compressor ends a deflate block, which only
    /// [`Open::close`] should do.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `text` as a finished raw deflate stream: the last piece of a member.
pub fn last(text: &[u8]) -> Vec<u8> {
    let mut deflate = DeflateEncoder::new(Vec::with_capacity(text.len() / 4 + 64), level());
    // Writing to memory fails only on a compressor bug.
    let _ = deflate.write_all(text);
    deflate.finish().unwrap_or_default()
}

/// The trailer of a member whose text has CRC-32 `crc` and `len` bytes.
pub fn trailer(crc: u32, len: usize) -> [u8; TRAILER_LEN] {
    let mut t = [0; TRAILER_LEN];
    t[..4].copy_from_slice(&crc.to_le_bytes());
    // The length modulo 2^32, as RFC 1952 says (ISIZE).
    t[4..].copy_from_slice(&(len as u32).to_le_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Text of `n` bytes that compresses like an exposition (repetitive lines) but not
    /// to nothing.
    fn text(n: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 64);
        let mut x = seed | 1;
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(
                format!(
                    "t_amount{{account=\"a{}\",package=\"p{}\"}} {}\n",
                    x % 977,
                    x % 13,
                    x % 100_003
                )
                .as_bytes(),
            );
        }
        out.truncate(n);
        out
    }

    /// A member of two pieces, as the exposition builds it.
    fn member(main: &[u8], process: &[u8]) -> Vec<u8> {
        let mut open = Open::new(0);
        // In pieces, as the encoder writes.
        for piece in main.chunks(64 * 1024) {
            open.write_all(piece).unwrap();
        }
        let closed = open.close().unwrap();
        assert_eq!(closed.len, main.len());
        let mut crc = closed.crc.clone();
        crc.update(process);
        let mut out = HEADER.to_vec();
        out.extend_from_slice(&closed.deflate);
        out.extend_from_slice(&last(process));
        out.extend_from_slice(&trailer(crc.finalize(), main.len() + process.len()));
        out
    }

    /// Every size class of the registry's text: empty, tiny, one encoder piece and one
    /// byte more, the plain-copy limit and one byte more, several megabytes.
    const SIZES: [usize; 8] = [
        0,
        1,
        2_000,
        65_536,
        65_537,
        1 << 20,
        (1 << 20) + 1,
        5_000_000,
    ];

    #[test]
    fn members_decode_with_flate2() {
        for (i, &n) in SIZES.iter().enumerate() {
            let main = text(n, i as u64 + 1);
            let process = text(2_048, 99);
            let gz = member(&main, &process);
            let mut got = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut got)
                .unwrap_or_else(|e| panic!("{n} bytes: {e}"));
            assert_eq!(got.len(), main.len() + process.len(), "{n} bytes");
            assert!(
                got.starts_with(&main) && got.ends_with(&process),
                "{n} bytes"
            );
        }
    }

    /// The same members through the system's `gunzip`, which checks the CRC and the
    /// length of the trailer.
    #[test]
    fn members_decode_with_gunzip() {
        use std::process::{Command, Stdio};
        for (i, &n) in SIZES.iter().enumerate() {
            let main = text(n, i as u64 + 7);
            let process = text(1_500, 5);
            let gz = member(&main, &process);
            let mut child = Command::new("gunzip")
                .arg("-c")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("gunzip (Debian package gzip) is installed");
            let mut stdin = child.stdin.take().unwrap();
            let writer = std::thread::spawn(move || stdin.write_all(&gz));
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            assert!(
                out.status.success(),
                "{n} bytes: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut expected = main;
            expected.extend_from_slice(&process);
            assert!(out.stdout == expected, "{n} bytes: gunzip gave other text");
        }
    }

    /// A wrong trailer is caught by both decoders: the test above checks something.
    #[test]
    fn a_wrong_crc_is_rejected() {
        let mut gz = member(&text(10_000, 3), b"x 1\n");
        let at = gz.len() - TRAILER_LEN;
        gz[at] ^= 1;
        let mut got = Vec::new();
        assert!(flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut got)
            .is_err());
        let mut child = std::process::Command::new("gunzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&gz).unwrap();
        assert!(!child.wait().unwrap().success());
    }

    /// The piece used when compression failed is a valid empty piece.
    #[test]
    fn the_empty_piece_frames_like_any_other() {
        let empty = Closed::empty();
        assert!(empty.deflate.ends_with(&SYNC_MARK));
        let mut gz = HEADER.to_vec();
        gz.extend_from_slice(&empty.deflate);
        gz.extend_from_slice(&last(b"x 1\n"));
        gz.extend_from_slice(&trailer(crc32fast::hash(b"x 1\n"), 4));
        let mut got = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, b"x 1\n");
    }

    #[test]
    fn the_length_is_taken_modulo_2_to_the_32() {
        assert_eq!(
            trailer(0xdead_beef, (1 << 32) + 5),
            [0xef, 0xbe, 0xad, 0xde, 5, 0, 0, 0]
        );
    }
}
