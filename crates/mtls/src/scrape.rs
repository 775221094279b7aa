//! The plain-HTTP listener (`--metrics ADDR`) that serves `GET /metrics`, and the health
//! checks `GET /healthz` and `GET /readyz`, for the server and for `client proxy`: each
//! renders its own metrics and says whether it is ready ([`Exposition`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// What a metrics listener serves: the Prometheus text exposition, and health.
pub trait Exposition: Send + Sync + 'static {
    /// The whole exposition, as served at each scrape.
    fn render(&self) -> String;

    /// `GET /healthz`: the process answers.
    fn live(&self) -> (StatusCode, String) {
        (StatusCode::OK, "ok\n".into())
    }

    /// `GET /readyz`: ready to serve (200), or why not (503).
    fn ready(&self, _now: time::OffsetDateTime) -> (StatusCode, String) {
        (StatusCode::OK, "ready\n".into())
    }
}

/// Most metrics connections served at once; more wait in the accept queue.
const MAX_SCRAPERS: usize = 8;
/// The longest a metrics connection may stay open.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(30);

/// Binds the metrics listener at `addr` (`--metrics`), if there is one.
pub async fn bind(addr: Option<&str>) -> crate::Result<Option<TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::Io {
            context: format!("cannot serve metrics on {addr} (--metrics)"),
            source,
        })?;
    Ok(Some(listener))
}

/// Logs where the metrics are, and serves them on `listener` in a task of its own until
/// `stop` resolves.
pub fn spawn<M: Exposition>(
    listener: TcpListener,
    metrics: Arc<M>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(metrics.addr = %addr, path = "/metrics", health = "/healthz /readyz", "serving Prometheus metrics over plain HTTP");
    }
    tokio::spawn(serve(listener, metrics, stop));
}

/// Serves `GET /metrics`, `/healthz` and `/readyz` on `listener` until `stop` resolves.
pub async fn serve<M: Exposition>(
    listener: TcpListener,
    metrics: Arc<M>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut http = hyper::server::conn::http1::Builder::new();
    // One scrape per connection, a few at a time: a scraper needs no more, and the
    // listener must not become a way around --max-connections.
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(false);
    let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            () = &mut stop => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        let metrics = metrics.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let metrics = metrics.clone();
            async move { Ok::<_, Infallible>(scrape(&req, metrics.as_ref())) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            // A scraper that stalls is dropped; a scrape never takes this long.
            match tokio::time::timeout(SCRAPE_DEADLINE, conn).await {
                Ok(Err(e)) => {
                    debug!(peer.addr = %peer, error = %e, "metrics connection ended with an error");
                }
                Err(_) => debug!(peer.addr = %peer, "metrics connection took too long; dropped"),
                Ok(Ok(())) => {}
            }
            drop(permit);
        });
    }
}

fn scrape<M: Exposition>(req: &Request<Incoming>, metrics: &M) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, metrics.render()),
        (&Method::GET, "/healthz") => {
            let (status, body) = metrics.live();
            (status, TEXT, body)
        }
        (&Method::GET, "/readyz") => {
            let (status, body) = metrics.ready(time::OffsetDateTime::now_utc());
            (status, TEXT, body)
        }
        _ => (
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: metrics are at GET /metrics, health at GET /healthz and GET /readyz\n"
                .to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
