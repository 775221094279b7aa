//! The raw bytes of a connection, both ways, in the order they passed: a stream wrapper
//! ([`Recorder`]) copies what it reads and writes into a [`Recording`] shared through a
//! [`Tap`]. Bounded: each direction keeps at most [`MAX_RECORDED`] bytes, and the trace says
//! where it stopped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Dir;
use crate::explain::Side;

/// Most bytes kept per direction; what comes later is not recorded (and the trace says so).
pub const MAX_RECORDED: usize = 256 * 1024;

/// The bytes of one connection, in the order they passed, each run with its direction.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    chunks: Vec<(Dir, Vec<u8>)>,
    kept: [usize; 2],
    cut: [bool; 2],
}

impl Recording {
    /// Adds bytes that passed in direction `dir` (up to the bound).
    pub fn push(&mut self, dir: Dir, bytes: &[u8]) {
        let i = dir.index();
        let room = MAX_RECORDED - self.kept[i];
        let take = bytes.len().min(room);
        if take < bytes.len() {
            self.cut[i] = true;
        }
        if take == 0 {
            return;
        }
        self.kept[i] += take;
        match self.chunks.last_mut() {
            Some((last, run)) if *last == dir => run.extend_from_slice(&bytes[..take]),
            _ => self.chunks.push((dir, bytes[..take].to_vec())),
        }
    }

    /// The runs of bytes, in order.
    pub fn chunks(&self) -> impl Iterator<Item = (Dir, &[u8])> {
        self.chunks.iter().map(|(d, b)| (*d, b.as_slice()))
    }

    /// Whether recording in direction `dir` stopped at the bound.
    pub fn cut(&self, dir: Dir) -> bool {
        self.cut[dir.index()]
    }
}

/// Where a [`Recorder`] puts what passes, shared with whoever builds the trace.
#[derive(Clone, Debug)]
pub struct Tap(Arc<TapInner>);

#[derive(Debug)]
struct TapInner {
    recording: Mutex<Recording>,
    stopped: AtomicBool,
    /// The direction of the bytes this side reads (from its peer).
    reads: Dir,
}

impl Tap {
    /// A tap for the side that records: a client reads what the server sends.
    pub fn new(side: Side) -> Self {
        let reads = match side {
            Side::Client => Dir::ServerToClient,
            Side::Server => Dir::ClientToServer,
        };
        Self(Arc::new(TapInner {
            recording: Mutex::new(Recording::default()),
            stopped: AtomicBool::new(false),
            reads,
        }))
    }

    fn record(&self, read: bool, bytes: &[u8]) {
        if bytes.is_empty() || self.0.stopped.load(Ordering::Relaxed) {
            return;
        }
        let dir = match read {
            true => self.0.reads,
            false => self.0.reads.reverse(),
        };
        if let Ok(mut rec) = self.0.recording.lock() {
            rec.push(dir, bytes);
        }
    }

    /// Stops recording and hands over what was recorded.
    pub fn finish(&self) -> Recording {
        self.0.stopped.store(true, Ordering::Relaxed);
        self.0
            .recording
            .lock()
            .map(|mut rec| std::mem::take(&mut *rec))
            .unwrap_or_default()
    }
}

/// A stream that copies what it reads and writes to a [`Tap`]; without one it only passes
/// the bytes on.
#[derive(Debug)]
pub struct Recorder<S> {
    inner: S,
    tap: Option<Tap>,
}

impl<S> Recorder<S> {
    /// Wraps `inner`; `tap: None` records nothing.
    pub fn new(inner: S, tap: Option<Tap>) -> Self {
        Self { inner, tap }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(tap)) = (&poll, &self.tap) {
            tap.record(true, &buf.filled()[before..]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(tap)) = (&poll, &self.tap) {
            tap.record(false, &buf[..*n]);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(n)), Some(tap)) = (&poll, &self.tap) {
            let mut left = *n;
            for slice in bufs {
                if left == 0 {
                    break;
                }
                let take = left.min(slice.len());
                tap.record(false, &slice[..take]);
                left -= take;
            }
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_recording_keeps_runs_in_order_and_stops_at_the_bound() {
        let mut rec = Recording::default();
        rec.push(Dir::ClientToServer, b"ab");
        rec.push(Dir::ClientToServer, b"c");
        rec.push(Dir::ServerToClient, b"xy");
        rec.push(Dir::ClientToServer, b"d");
        let runs: Vec<(Dir, &[u8])> = rec.chunks().collect();
        assert_eq!(
            runs,
            vec![
                (Dir::ClientToServer, &b"abc"[..]),
                (Dir::ServerToClient, &b"xy"[..]),
                (Dir::ClientToServer, &b"d"[..]),
            ]
        );
        assert!(!rec.cut(Dir::ClientToServer));

        let big = vec![7u8; MAX_RECORDED];
        rec.push(Dir::ServerToClient, &big);
        assert!(rec.cut(Dir::ServerToClient));
        assert!(!rec.cut(Dir::ClientToServer));
        let kept: usize = rec
            .chunks()
            .filter(|(d, _)| *d == Dir::ServerToClient)
            .map(|(_, b)| b.len())
            .sum();
        assert_eq!(kept, MAX_RECORDED);
    }

    #[tokio::test]
    async fn the_recorder_copies_both_directions_until_finished() {
        let (near, mut far) = tokio::io::duplex(64);
        let tap = Tap::new(Side::Client);
        let mut stream = Recorder::new(near, Some(tap.clone()));
        stream.write_all(b"hello").await.expect("write");
        far.write_all(b"world").await.expect("far write");
        let mut got = [0u8; 5];
        stream.read_exact(&mut got).await.expect("read");
        let rec = tap.finish();
        let runs: Vec<(Dir, &[u8])> = rec.chunks().collect();
        assert_eq!(
            runs,
            vec![
                (Dir::ClientToServer, &b"hello"[..]),
                (Dir::ServerToClient, &b"world"[..]),
            ]
        );
        // After finish, nothing more is recorded.
        stream.write_all(b"later").await.expect("write");
        assert_eq!(tap.finish().chunks().count(), 0);
    }
}
