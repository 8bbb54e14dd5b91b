//! A connection whose client stops reading is dropped: a response holds its body (at
//! 10,000 accounts a 5 MB exposition that may have been replaced since), so a client
//! that never reads must not keep it for ever.
//!
//! [`SendDeadline`] wraps a connection's stream: once a write cannot go on (the
//! client's window and the kernel's buffers are full), the write fails if the stream
//! accepts no byte within the deadline. Any byte accepted starts the wait again, so a
//! slow reader that keeps reading is served, however long it takes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A stream whose writes fail after `limit` without progress.
pub struct SendDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write waits; kept to be re-armed without allocating.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl<S> SendDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        SendDeadline {
            inner,
            limit,
            timer: None,
            waiting: false,
        }
    }

    /// After a write attempt: progress ends the wait; no progress starts it (or checks
    /// it). `Err` once the deadline has passed.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.waiting = false;
            return result;
        }
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.limit;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let timer = self.timer.as_mut().expect("armed above");
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for too long",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::SendDeadline;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// A peer that reads nothing: the writes fill the pipe, then fail once the limit
    /// has passed without progress (paused clock: no real waiting).
    #[tokio::test(start_paused = true)]
    async fn writes_fail_after_the_limit_without_progress() {
        let (a, _unread) = tokio::io::duplex(1024);
        let mut s = SendDeadline::new(a, Duration::from_secs(30));
        let start = tokio::time::Instant::now();
        let err = s.write_all(&[0; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(30));

        // A reader that takes a byte now and then, each within the limit, is served.
        let (a, mut b2) = tokio::io::duplex(16);
        let mut s = SendDeadline::new(a, Duration::from_secs(30));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut got = Vec::new();
            let mut buf = [0; 8];
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                match b2.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        s.write_all(&[7; 64]).await.unwrap();
        s.shutdown().await.unwrap();
        drop(s);
        assert_eq!(reader.await.unwrap(), vec![7; 64]);
    }
}
