//! One request from a local application: refused if it names another host ([`super::target`]),
//! otherwise cleaned and sent to the upstream, and its answer streamed back.
//!
//! The application cannot speak for the proxy: whatever it sends under a client-certificate
//! or address header ([`crate::hygiene`]), or under a name with an underscore, is removed,
//! since the upstream believes what comes over a connection with our certificate. Hop-by-hop
//! headers go both ways. When the request does not reach the upstream, the application gets
//! 502 with the reason in the words `client` prints for the same failure (504 when the
//! upstream does not start its answer in time), and the log says each cause once
//! ([`super::causes`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderName;
use hyper::{Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::Shared;
use super::target;
use crate::activity::{Activity, AppWait, RequestGuard, WatchedBody};
use crate::error::Error;
use crate::format::escape_controls;
use crate::hygiene::{strip_hop_by_hop, strip_identity_headers, strip_underscored};
use crate::response::{ResponseBody, explained};

/// How long the upstream may take to start its response (as the server waits for its own
/// upstream).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The reason code of a request that did not reach the upstream: the handshake failure's
/// code, or what failed before or after it.
pub fn failure_code(e: &Error) -> &'static str {
    match e {
        Error::Tls { failure, .. } => failure.code(),
        Error::Connect { .. } | Error::Resolve { .. } => "connect",
        Error::Timeout { .. } => "timeout",
        Error::Http { .. } => "http",
        _ => "other",
    }
}

/// Answers one request from the application at `peer` on a connection followed by
/// `activity`.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    activity: &Arc<Activity>,
    shared: &Shared,
) -> Response<ResponseBody> {
    let guard = RequestGuard::new(activity);
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let response = match target::check(&req, &shared.url) {
        Err(refusal) => {
            let code = refusal.code();
            shared.metrics.refused(code);
            let words = refusal.to_string();
            if shared.notices.say_now(code, &words) {
                warn!(peer.addr = %peer, reason = code, why = %words, "refused a request (logged once per cause)");
            }
            refusal.response()
        }
        Ok(()) => forward(req, peer, activity, shared).await,
    };
    debug!(
        peer.addr = %peer,
        method = %method,
        path = %escape_controls(&path),
        status = response.status().as_u16(),
        "answered"
    );
    shared.metrics.request(response.status());
    response.map(|body| WatchedBody::response(body, guard).boxed_unsync())
}

async fn forward(
    req: Request<Incoming>,
    peer: SocketAddr,
    activity: &Arc<Activity>,
    shared: &Shared,
) -> Response<ResponseBody> {
    let (mut parts, body) = req.into_parts();
    let mut removed = strip_identity_headers(&mut parts.headers);
    removed.extend(strip_underscored(&mut parts.headers));
    strip_hop_by_hop(&mut parts.headers);
    if !removed.is_empty() {
        let names: Vec<&str> = removed.iter().map(HeaderName::as_str).collect();
        let names = names.join(", ");
        if shared.notices.say_now("removed_headers", &names) {
            warn!(
                peer.addr = %peer,
                headers = %names,
                "removed headers the application sent that only a proxy may set (a client \
                 certificate, addresses) or whose names hold an underscore; the upstream \
                 identifies this proxy by its certificate (logged once per set of names)"
            );
        }
    }
    let req = Request::from_parts(parts, WatchedBody::request(body, activity.clone()));
    let waiting = AppWait::new(activity);
    let sent = tokio::time::timeout(RESPONSE_TIMEOUT, shared.upstream.send(req)).await;
    drop(waiting);
    let (failed, status) = match sent {
        Ok(Ok(response)) => {
            if shared.failures.forget() {
                info!(upstream = %shared.url, "the upstream answers again");
            }
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            return Response::from_parts(
                parts,
                body.map_err(crate::response::BoxError::from).boxed_unsync(),
            );
        }
        Ok(Err(e)) => (e, StatusCode::BAD_GATEWAY),
        Err(_) => (
            Error::Timeout {
                phase: format!("waiting for {} to start its response", shared.url),
                after: RESPONSE_TIMEOUT,
            },
            StatusCode::GATEWAY_TIMEOUT,
        ),
    };
    let code = failure_code(&failed);
    shared.metrics.failure(code);
    let words = failed.to_string();
    if shared.failures.say_now(code, &words) {
        warn!(
            upstream = %shared.url,
            reason = code,
            error = %words,
            "a request did not reach the upstream; local applications get this reason in a 502 \
             (logged once per cause, counted in mtls_proxy_upstream_failures_total)"
        );
    }
    explained(status, words)
}
