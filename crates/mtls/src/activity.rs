//! What one connection is doing, as the watchdogs of the server and of `client proxy` see
//! it, and the one typed cause, a [`Limit`], that a watchdog closes it for (so a log line
//! and a metric can never disagree).
//!
//! - [`Activity`] follows one connection: how many requests are in flight, since when it
//!   has been idle, since when a request head has been arriving, and whether requests in
//!   flight are moving. [`Activity::expired`] resolves when the connection has been idle
//!   too long, when a request head has taken longer than the header timeout (HTTP/1.1: a
//!   slowloris), or when requests in flight have stalled on the client for the idle timeout
//!   (see [`Limit::StallTimeout`]).
//! - [`Tracked`] wraps the connection's stream to notice the first bytes of a request head
//!   (and counts the bytes written, to tell whether an error was answered);
//!   [`RequestGuard`] marks one request in flight, from its head until its response body
//!   has been sent (or dropped); [`WatchedBody`] watches the request and response bodies
//!   move; [`AppWait`] marks a handler waiting for the application.
//! - [`Phase`]: where the program is in its life (running, draining, closing).
//!
//! The server's watchdog (`server::watchdog`) and `client proxy`'s listener act on them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Most header fields in an HTTP/1.1 request head (hyper's limit); more gets 431, like a
/// head larger than `--max-header-size`.
pub const MAX_HEADER_FIELDS: usize = 100;

/// Where the program (the server, `client proxy`) is in its life, as connection tasks see
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Running,
    /// Not accepting; connections finish what they are doing, then close.
    Draining,
    /// The drain timeout passed: connections close now.
    Closing,
}

impl Phase {
    /// Resolves once `phase` has left [`Phase::Running`] (or its sender is gone).
    pub async fn stopped(mut phase: watch::Receiver<Phase>) {
        let _ = phase.wait_for(|p| *p != Phase::Running).await;
    }
}

/// The HTTP/1.1 settings of both listeners (the server's, `client proxy`'s). The header
/// timeout is enforced per connection ([`Activity`]), from the first byte of a request
/// head, so that an idle keep-alive connection is governed by the idle timeout alone.
/// `max_header_bytes` is the exact limit on a request head; max_buf_size alone is not (one
/// read may take in more than it, and a head that arrived whole passes).
pub fn http1_server(max_header_bytes: usize) -> http1::Builder {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_header_size(max_header_bytes)
        .max_buf_size(max_header_bytes);
    http1
}

/// A limit that acted on a connection: the `reason` of its log line and the `limit` label
/// of `mtls_limits_hit_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    /// No request in flight for the idle timeout: closed gracefully.
    IdleTimeout,
    /// A request head began arriving and did not finish within the header timeout.
    HeaderTimeout,
    /// A request head larger than `--max-header-size`: answered 431 and closed.
    HeaderTooLarge,
    /// A request head with more than [`MAX_HEADER_FIELDS`] header fields: answered 431 and
    /// closed.
    TooManyHeaders,
    /// Requests are in flight, but for the idle timeout nothing moved on the client's side:
    /// no request body bytes arrived while one was awaited, and no response bytes were
    /// taken (a client that stops sending its body, stops reading, or grants no HTTP/2
    /// flow-control window). Waiting for the application is not a stall of the connection:
    /// the proxy's own timeouts govern it, and a response body the application stops
    /// sending for this long is ended by the proxy (counted here too, with its own log line).
    StallTimeout,
    /// A graceful close did not finish in time: the connection was dropped.
    CloseDeadline,
    /// `--max-connections` was reached: new connections waited.
    MaxConnections,
    /// `--max-handshakes` connections were in their handshake: the oldest was closed to
    /// admit a new one.
    HandshakeBudget,
}

impl Limit {
    /// Every limit, in the order the metrics list them.
    pub const ALL: [Limit; 8] = [
        Limit::IdleTimeout,
        Limit::HeaderTimeout,
        Limit::HeaderTooLarge,
        Limit::TooManyHeaders,
        Limit::StallTimeout,
        Limit::CloseDeadline,
        Limit::MaxConnections,
        Limit::HandshakeBudget,
    ];

    /// The name in logs (`reason=`) and metrics (`limit=`).
    pub fn label(self) -> &'static str {
        match self {
            Limit::IdleTimeout => "idle_timeout",
            Limit::HeaderTimeout => "header_timeout",
            Limit::HeaderTooLarge => "header_too_large",
            Limit::TooManyHeaders => "too_many_headers",
            Limit::StallTimeout => "stall_timeout",
            Limit::CloseDeadline => "close_deadline",
            Limit::MaxConnections => "max_connections",
            Limit::HandshakeBudget => "handshake_budget",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How often each [`Limit`] acted, for the metrics.
#[derive(Debug, Default)]
pub struct LimitCounts([AtomicU64; Limit::ALL.len()]);

impl LimitCounts {
    /// `limit` acted once.
    pub fn hit(&self, limit: Limit) {
        self.0[limit.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How often each limit acted, in [`Limit::ALL`] order.
    pub fn limits(&self) -> [(Limit, u64); Limit::ALL.len()] {
        Limit::ALL.map(|l| (l, self.0[l.index()].load(Ordering::Relaxed)))
    }
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
    /// Bytes read since that first byte.
    head_bytes: AtomicU64,
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
            head_bytes: AtomicU64::new(0),
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
    fn on_read(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        if self.time_heads
            && self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(UNSET, self.now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.head_bytes.store(n, Ordering::Relaxed);
            self.written_at_head
                .store(self.written.load(Ordering::Relaxed), Ordering::Relaxed);
            self.changed.notify_one();
        } else if self.head_since.load(Ordering::Relaxed) != UNSET {
            self.head_bytes.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Bytes read since the unfinished request head began (HTTP/1.1).
    pub fn head_bytes(&self) -> u64 {
        self.head_bytes.load(Ordering::Relaxed)
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
    pub async fn expired(&self, idle: Duration, header: Duration) -> Limit {
        loop {
            let head = self.head_since.load(Ordering::Acquire);
            let next = if head != UNSET {
                Some((self.at(head) + header, Limit::HeaderTimeout))
            } else if self.in_flight.load(Ordering::Acquire) == 0 {
                let since = self.idle_since.load(Ordering::Acquire);
                Some((self.at(since) + idle, Limit::IdleTimeout))
            } else if self.blocked_on_client.load(Ordering::Acquire) > 0
                || self.waiting_on_app.load(Ordering::Acquire) == 0
            {
                let since = self.progress.load(Ordering::Relaxed);
                Some((self.at(since) + idle, Limit::StallTimeout))
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

/// A tunnel (an upgraded request) on a connection that goes on serving (HTTP/2 extended
/// CONNECT): in flight, and waiting for the application as far as the connection's timers
/// go, so the connection is neither idle nor stalled while it runs; the tunnel's own idle
/// timeout governs it.
#[derive(Debug)]
pub struct TunnelGuard {
    _request: RequestGuard,
}

impl TunnelGuard {
    /// The tunnel opened.
    pub fn new(activity: &Arc<Activity>) -> Self {
        activity.waiting_on_app.fetch_add(1, Ordering::AcqRel);
        Self {
            _request: RequestGuard::new(activity),
        }
    }
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        let a = &self._request.0;
        a.progressed();
        if a.waiting_on_app.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.changed.notify_one();
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

/// Who a body waits for when it has nothing to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waits {
    /// A request body waits for the client's next bytes: a stall if it lasts.
    OnClient,
    /// A response body waits for the application: not the client's fault.
    OnApplication,
}

/// A body the watchdog watches move: while it waits it counts as waiting (for the client,
/// or for the application), and each chunk that passes is progress. A response body also
/// keeps its request counted as in flight until it has been sent (or dropped).
pub struct WatchedBody<B = hyper::body::Incoming> {
    inner: B,
    activity: Arc<Activity>,
    waits: Waits,
    waiting: bool,
    _request: Option<RequestGuard>,
}

/// A request body, as the handler reads it.
pub type RequestBody<B = hyper::body::Incoming> = WatchedBody<B>;

impl<B> WatchedBody<B> {
    /// `inner`, a body the client sends on a connection followed by `activity`.
    pub fn request(inner: B, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            waits: Waits::OnClient,
            waiting: false,
            _request: None,
        }
    }

    /// `inner`, the response to the request `guard` counts; the request stays in flight
    /// until this body is dropped.
    pub fn response(inner: B, guard: RequestGuard) -> Self {
        Self {
            inner,
            activity: guard.0.clone(),
            waits: Waits::OnApplication,
            waiting: false,
            _request: Some(guard),
        }
    }

    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting == waiting {
            return;
        }
        self.waiting = waiting;
        let a = &self.activity;
        let counter = match self.waits {
            Waits::OnClient => &a.blocked_on_client,
            Waits::OnApplication => &a.waiting_on_app,
        };
        if waiting {
            counter.fetch_add(1, Ordering::AcqRel);
        } else {
            counter.fetch_sub(1, Ordering::AcqRel);
        }
        a.changed.notify_one();
    }
}

impl<B> Drop for WatchedBody<B> {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

impl<B: Body + Unpin> Body for WatchedBody<B> {
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
        let read = buf.filled().len() - before;
        if matches!(polled, Poll::Ready(Ok(()))) && read > 0 {
            self.activity.on_read(read);
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

    /// What fires next on `a` (idle timeout 60 s, header timeout 5 s), and after how long.
    async fn next_expiry(a: &Activity) -> (Limit, Duration) {
        let started = Instant::now();
        let why = a
            .expired(Duration::from_secs(60), Duration::from_secs(5))
            .await;
        (why, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_idle_timeout() {
        let a = Activity::new(true);
        assert_eq!(
            next_expiry(&a).await,
            (Limit::IdleTimeout, Duration::from_secs(60))
        );
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
        assert_eq!(
            next_expiry(&a).await,
            (Limit::IdleTimeout, Duration::from_secs(60))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_starts_arriving_is_timed_by_the_header_timeout() {
        let a = Activity::new(true);
        tokio::time::advance(Duration::from_secs(10)).await;
        a.on_read(1);
        assert_eq!(
            next_expiry(&a).await,
            (Limit::HeaderTimeout, Duration::from_secs(5))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_body_stops_arriving_stalls_after_the_idle_timeout() {
        let a = Activity::new(true);
        let _guard = RequestGuard::new(&a);
        // The handler waits for the application, and reads the body meanwhile.
        let _app = AppWait::new(&a);
        let mut body = WatchedBody::request(Pending, a.clone());
        let waker = std::task::Waker::noop();
        let polled = Pin::new(&mut body).poll_frame(&mut Context::from_waker(waker));
        assert!(polled.is_pending());
        assert_eq!(
            next_expiry(&a).await,
            (Limit::StallTimeout, Duration::from_secs(60))
        );
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
        let _body = WatchedBody::response(Pending, guard);
        assert_eq!(
            next_expiry(&a).await,
            (Limit::StallTimeout, Duration::from_secs(60))
        );
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
        a.on_read(1);
        let why = a
            .expired(Duration::from_secs(60), Duration::from_secs(5))
            .await;
        assert_eq!(why, Limit::IdleTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_keeps_its_connection_neither_idle_nor_stalled_until_it_ends() {
        let a = Activity::new(false);
        let tunnel = TunnelGuard::new(&a);
        let waiting = tokio::time::timeout(
            Duration::from_secs(1000),
            a.expired(Duration::from_secs(60), Duration::from_secs(5)),
        )
        .await;
        assert!(waiting.is_err(), "expired while a tunnel was open");
        drop(tunnel);
        assert_eq!(
            next_expiry(&a).await,
            (Limit::IdleTimeout, Duration::from_secs(60))
        );
    }
}
