//! Stream wrappers: a deadline for logging in, and SFTP framing that ends the channel when a
//! client sends a packet longer than the limit (russh-sftp would log it and read on, out of step).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A connection that fails once its deadline passes, unless `authenticated` was set before.
/// The deadline is polled with every read, so a silent client is cut off too.
pub(crate) struct PreAuthDeadline<S> {
    inner: S,
    deadline: Option<Pin<Box<Sleep>>>,
    authenticated: Arc<AtomicBool>,
}

impl<S> PreAuthDeadline<S> {
    pub(crate) fn new(inner: S, limit: Duration, authenticated: Arc<AtomicBool>) -> Self {
        PreAuthDeadline {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            authenticated,
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.deadline.is_some() && self.authenticated.load(Ordering::Acquire) {
            self.deadline = None;
        }
        match &mut self.deadline {
            Some(d) => d.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "not authenticated within the deadline",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for PreAuthDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PreAuthDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Follows the SFTP packet lengths of what a client sends; at the first length above `max`
/// it reports end of stream (so russh-sftp's loop stops) and calls `on_violation` once (which
/// closes the channel).
pub(crate) struct Framing<S> {
    inner: S,
    max: u32,
    /// Bytes of the current length prefix seen, and their value so far.
    len_have: u8,
    len_value: u32,
    /// Body bytes of the current packet still to come.
    body_left: u32,
    broken: bool,
    on_violation: Option<Box<dyn FnOnce() + Send>>,
}

impl<S> Framing<S> {
    pub(crate) fn new(inner: S, max: u32, on_violation: Box<dyn FnOnce() + Send>) -> Self {
        Framing {
            inner,
            max,
            len_have: 0,
            len_value: 0,
            body_left: 0,
            broken: false,
            on_violation: Some(on_violation),
        }
    }

    /// Walks `data`; false once a length is too large.
    fn track(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = (self.body_left as usize).min(data.len());
                self.body_left -= n as u32;
                data = &data[n..];
                continue;
            }
            self.len_value = (self.len_value << 8) | u32::from(data[0]);
            self.len_have += 1;
            data = &data[1..];
            if self.len_have == 4 {
                if self.len_value > self.max {
                    return false;
                }
                self.body_left = self.len_value;
                self.len_have = 0;
                self.len_value = 0;
            }
        }
        true
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Framing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.broken {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &res {
            let ok = {
                let this = &mut *self;
                this.track(&buf.filled()[before..])
            };
            if !ok {
                self.broken = true;
                buf.set_filled(before);
                if let Some(f) = self.on_violation.take() {
                    f();
                }
                return Poll::Ready(Ok(()));
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Framing<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_follows_lengths_across_reads() {
        let mut f = Framing::new((), 10, Box::new(|| {}));
        // Two packets (3 and 10 bytes), split at awkward places.
        assert!(f.track(&[0, 0]));
        assert!(f.track(&[0, 3, 1, 2]));
        assert!(f.track(&[3, 0, 0, 0, 10]));
        assert!(f.track(&[0; 10]));
        // A length of 11 is too much, even split.
        assert!(f.track(&[0, 0, 0]));
        assert!(!f.track(&[11]));
        let mut g = Framing::new((), 10, Box::new(|| {}));
        assert!(!g.track(&[0xff, 0xff, 0xff, 0xff]));
    }
}
