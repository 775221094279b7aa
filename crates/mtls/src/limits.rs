//! Limits against hostile or broken peers, and the values people type for them.
//!
//! - [`parse_duration`] and [`parse_size`] read `500ms`, `10s`, `2m` and `64KiB`.
//! - [`Activity`] follows one connection after its handshake: how many requests are in
//!   flight, since when it has been idle, since when a request head has been arriving, and
//!   whether requests in flight are moving. [`Activity::expired`] resolves when the
//!   connection has been idle too long, when a request head has taken longer than the
//!   header timeout (HTTP/1.1: a slowloris), or when requests in flight have stalled on the
//!   client for the idle timeout (see [`Expired::Stalled`]).
//! - [`Tracked`] wraps the connection's stream to notice the first bytes of a request head
//!   (and counts the bytes written, to tell whether an error was answered);
//!   [`RequestGuard`] marks one request in flight, from its head until its response body
//!   has been sent (or dropped); [`GuardedBody`] and [`RequestBody`] watch the response and
//!   request bodies move; [`AppWait`] marks a handler waiting for the application.
//!
//! The connection limit itself is a semaphore in [`crate::server`]: beyond it, new
//! connections wait in the kernel's accept queue until one closes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Parses a duration as typed on the command line: `500ms`, `10s`, `2m`, `1h`, or `0`.
///
/// A bare number is refused (except 0): `--idle-timeout 60` could mean seconds or
/// milliseconds, so the unit is required.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let bad = || {
        format!(
            "{text:?} is not a duration: write a whole number and a unit, like 500ms, 10s, 2m or 1h"
        )
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let millis = match unit.trim() {
        "ms" => Some(n),
        "s" | "sec" => n.checked_mul(1_000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(bad()),
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Parses a size in bytes: `65536`, `64KiB`, `64k`, `1MiB`, `1m` (k and m are 1024-based).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let bad = || format!("{text:?} is not a size: write bytes, or a number with KiB or MiB");
    let n: usize = number.parse().map_err(|_| bad())?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(bad()),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A duration the way the help and the logs print it: `10s`, `500ms`, `2m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".into()
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// Why a connection's watchdog fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// No request in flight for the idle timeout: close it gracefully.
    Idle,
    /// A request head began arriving and did not finish within the header timeout.
    HeaderTimeout,
    /// Requests are in flight, but for the idle timeout nothing moved on the client's side:
    /// no request body bytes arrived while one was awaited, and no response bytes were
    /// taken (a client that stops sending its body, stops reading, or grants no HTTP/2
    /// flow-control window). Waiting for the application is not a stall: the proxy's own
    /// timeouts govern it.
    Stalled,
}

/// "Not set" for the millisecond timestamps below.
const UNSET: u64 = u64::MAX;

/// What one connection is doing, shared by its stream, its requests and its watchdog.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Requests whose response has not been sent completely.
    in_flight: AtomicUsize,
    /// Milliseconds since `start` when `in_flight` last dropped to zero.
    idle_since: AtomicU64,
    /// Milliseconds since `start` when the first byte of an unfinished request head
    /// arrived, or [`UNSET`].
    head_since: AtomicU64,
    /// Milliseconds since `start` when a request in flight last moved: it began, a body
    /// chunk arrived from the client, or a response chunk was taken.
    progress: AtomicU64,
    /// Request bodies waiting for the client's next bytes.
    blocked_on_client: AtomicUsize,
    /// Handlers and response bodies waiting for the application.
    waiting_on_app: AtomicUsize,
    /// Bytes written to the client (plaintext), and how many had been when the current
    /// request head began.
    written: AtomicU64,
    written_at_head: AtomicU64,
    /// Whether request heads are timed (HTTP/1.1; HTTP/2 multiplexes and pings, so only the
    /// idle timeout applies there).
    time_heads: bool,
    changed: Notify,
}

impl Activity {
    /// A fresh connection: idle since now, nothing arriving yet.
    pub fn new(time_heads: bool) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(UNSET),
            progress: AtomicU64::new(0),
            blocked_on_client: AtomicUsize::new(0),
            waiting_on_app: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            written_at_head: AtomicU64::new(0),
            time_heads,
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(UNSET - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Bytes arrived from the peer.
    fn on_read(&self) {
        if self.time_heads
            && self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(UNSET, self.now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.written_at_head
                .store(self.written.load(Ordering::Relaxed), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// Bytes were written to the peer. Only the connection's own task writes: a plain
    /// load and store is enough.
    fn on_write(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let total = self.written.load(Ordering::Relaxed).saturating_add(n);
        self.written.store(total, Ordering::Relaxed);
    }

    /// Whether anything was written since the unfinished request head began (so an error
    /// in it, such as 431, was answered).
    pub fn answered_since_head(&self) -> bool {
        self.written.load(Ordering::Relaxed) > self.written_at_head.load(Ordering::Relaxed)
    }

    fn progressed(&self) {
        self.progress.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves when the connection has been idle for `idle`, a request head has been
    /// arriving for longer than `header`, or requests in flight have stalled on the client
    /// for `idle`. Cancel-safe; call it again after it fired.
    pub async fn expired(&self, idle: Duration, header: Duration) -> Expired {
        loop {
            let head = self.head_since.load(Ordering::Acquire);
            let next = if head != UNSET {
                Some((self.at(head) + header, Expired::HeaderTimeout))
            } else if self.in_flight.load(Ordering::Acquire) == 0 {
                let since = self.idle_since.load(Ordering::Acquire);
                Some((self.at(since) + idle, Expired::Idle))
            } else if self.blocked_on_client.load(Ordering::Acquire) > 0
                || self.waiting_on_app.load(Ordering::Acquire) == 0
            {
                let since = self.progress.load(Ordering::Relaxed);
                Some((self.at(since) + idle, Expired::Stalled))
            } else {
                None
            };
            match next {
                Some((deadline, why)) if deadline <= Instant::now() => return why,
                Some((deadline, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// A handler waiting for the application (the upstream), from its request until the
/// response head: not a stall on the client's side.
#[derive(Debug)]
pub struct AppWait<'a>(&'a Activity);

impl<'a> AppWait<'a> {
    /// Starts waiting.
    pub fn new(activity: &'a Activity) -> Self {
        activity.waiting_on_app.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for AppWait<'_> {
    fn drop(&mut self) {
        self.0.progressed();
        if self.0.waiting_on_app.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_one();
        }
    }
}

/// One request in flight on a connection, from its head until its response body is done.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl RequestGuard {
    /// The head of a request has been read completely.
    pub fn new(activity: &Arc<Activity>) -> Self {
        activity.progressed();
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_since.store(UNSET, Ordering::Release);
        activity.changed.notify_one();
        Self(activity.clone())
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle_since.store(a.now_ms(), Ordering::Release);
            a.changed.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight until it has been sent, and
/// tells the watchdog when it moves (hyper took a chunk) or waits for the application.
pub struct GuardedBody<B> {
    inner: B,
    guard: RequestGuard,
    waiting: bool,
}

impl<B> GuardedBody<B> {
    /// Wraps `inner`; the request stays in flight until this body is dropped.
    pub fn new(inner: B, guard: RequestGuard) -> Self {
        Self {
            inner,
            guard,
            waiting: false,
        }
    }

    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting == waiting {
            return;
        }
        self.waiting = waiting;
        let a = &self.guard.0;
        if waiting {
            a.waiting_on_app.fetch_add(1, Ordering::AcqRel);
        } else if a.waiting_on_app.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.changed.notify_one();
        }
    }
}

impl<B> Drop for GuardedBody<B> {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

impl<B: Body + Unpin> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Pending => self.set_waiting(true),
            Poll::Ready(frame) => {
                self.set_waiting(false);
                if matches!(frame, Some(Ok(_))) {
                    self.guard.0.progressed();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that tells the watchdog when it waits for the client's next bytes, and
/// when they arrive.
pub struct RequestBody<B = hyper::body::Incoming> {
    inner: B,
    activity: Arc<Activity>,
    blocked: bool,
}

impl<B> RequestBody<B> {
    /// Wraps `inner`, a body the client sends on a connection followed by `activity`.
    pub fn new(inner: B, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            blocked: false,
        }
    }

    fn set_blocked(&mut self, blocked: bool) {
        if self.blocked == blocked {
            return;
        }
        self.blocked = blocked;
        let a = &self.activity;
        if blocked {
            a.blocked_on_client.fetch_add(1, Ordering::AcqRel);
            a.changed.notify_one();
        } else {
            a.blocked_on_client.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<B> Drop for RequestBody<B> {
    fn drop(&mut self) {
        self.set_blocked(false);
    }
}

impl<B: Body + Unpin> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Pending => self.set_blocked(true),
            Poll::Ready(frame) => {
                self.set_blocked(false);
                if matches!(frame, Some(Ok(_))) {
                    self.activity.progressed();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A stream that tells its connection's [`Activity`] when request bytes arrive.
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.activity.on_write(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.activity.on_write(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_accept_the_common_ones() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        let err = parse_duration("60").expect_err("a unit is required");
        assert!(err.contains("like 500ms, 10s, 2m"), "{err}");
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes_accept_bytes_kib_and_mib() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations_print_in_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_idle_timeout() {
        let a = Activity::new(true);
        let started = Instant::now();
        let why = a
            .expired(Duration::from_secs(60), Duration::from_secs(5))
            .await;
        assert_eq!(why, Expired::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle_and_idleness_restarts_after_it() {
        let a = Activity::new(true);
        let guard = RequestGuard::new(&a);
        // A long request: the application takes its time.
        let app = AppWait::new(&a);
        tokio::time::advance(Duration::from_secs(100)).await;
        let waiting = tokio::time::timeout(
            Duration::from_secs(1000),
            a.expired(Duration::from_secs(60), Duration::from_secs(5)),
        )
        .await;
        assert!(waiting.is_err(), "expired while a request was in flight");
        drop(app);
        drop(guard);
        let started = Instant::now();
        let why = a
            .expired(Duration::from_secs(60), Duration::from_secs(5))
            .await;
        assert_eq!(why, Expired::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_starts_arriving_is_timed_by_the_header_timeout() {
        let a = Activity::new(true);
        tokio::time::advance(Duration::from_secs(10)).await;
        a.on_read();
        let started = Instant::now();
        let why = a
            .expired(Duration::from_secs(60), Duration::from_secs(5))
            .await;
        assert_eq!(why, Expired::HeaderTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_body_stops_arriving_stalls_after_the_idle_timeout() {
        let a = Activity::new(true);
        let _guard = RequestGuard::new(&a);
        // The handler waits for the application, and reads the body meanwhile.
        let _app = AppWait::new(&a);
        let mut body = RequestBody::new(Pending, a.clone());
        let waker = std::task::Waker::noop();
        let polled = Pin::new(&mut body).poll_frame(&mut Context::from_waker(waker));
        assert!(polled.is_pending());
        let started = Instant::now();
        let why = a
            .expired(Duration::from_secs(60), Duration::from_secs(5))
            .await;
        assert_eq!(why, Expired::Stalled);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_nobody_takes_stalls_but_waiting_for_the_application_does_not() {
        let a = Activity::new(true);
        let guard = RequestGuard::new(&a);
        let app = AppWait::new(&a);
        let waiting = tokio::time::timeout(
            Duration::from_secs(1000),
            a.expired(Duration::from_secs(60), Duration::from_secs(5)),
        )
        .await;
        assert!(
            waiting.is_err(),
            "waiting for the application is not a stall"
        );
        drop(app);
        // The response is ready; hyper never takes it (no window, a client not reading).
        let _body = GuardedBody::new(Pending, guard);
        let started = Instant::now();
        let why = a
            .expired(Duration::from_secs(60), Duration::from_secs(5))
            .await;
        assert_eq!(why, Expired::Stalled);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    /// A body that never yields.
    struct Pending;

    impl Body for Pending {
        type Data = hyper::body::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn heads_are_not_timed_on_http2() {
        let a = Activity::new(false);
        a.on_read();
        let why = a
            .expired(Duration::from_secs(60), Duration::from_secs(5))
            .await;
        assert_eq!(why, Expired::Idle);
    }
}
