//! One connection after its handshake: who the client is (logged once, with the chain on
//! its path), whether the policy admits it, and then HTTP/1.1 or HTTP/2 (by ALPN) under the
//! watchdog; each request is logged and answered, denied with 403, refused (a malformed
//! target or CONNECT), or forwarded. The server's own answers (the greeting and the 403) are
//! plain text, or the browser view ([`super::page`]) for a request that prefers HTML.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use super::handshake::{Handshake, Wire, handshake, linger_close};
use super::metrics::ClientMetrics;
use super::page::{self, Facts, Page};
use super::policy::{Decision, POLICY_DENIED};
use super::proxy::grpc::{self, GrpcStatus};
use super::proxy::{ForwardedIdentity, IDENTITY_UNFORWARDABLE, Tunnels};
use super::reload::TlsMaterial;
use super::request;
use super::response::{ResponseBody, text_response};
use super::state::{Shared, Slot};
use super::watchdog::Limit;
use super::watchdog::{Activity, AppWait, Phase, RequestGuard, Tracked, Watched, WatchedBody};
use crate::certinfo::CertInfo;
use crate::format::{escape_controls, format_duration};
use crate::report::{PeerPath, TlsReport};

/// One connection, from TCP to the last request. Before HTTP starts, a shutdown abandons it.
pub(super) async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    place: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut phase = shared.phase.clone();
    let mut reloads = shared.tls.subscribe();
    let connections = &shared.connections;
    let (mut ticket, evicted) = connections.begin_handshake(peer);
    if let Some((oldest, waited)) = evicted {
        shared.watchdog.counts.hit(Limit::HandshakeBudget);
        if connections.log_limit_now() {
            warn!(
                peer.addr = %oldest,
                reason = Limit::HandshakeBudget.label(),
                waited = %format_duration(waited),
                "too many connections in their handshake: closed the one that waited longest \
                 to admit a new one (--max-handshakes)"
            );
        }
    }
    // Each phase's state lives on the heap for as long as the phase lasts, so an idle
    // connection holds only what serving needs (the handshake's state is gone, and the
    // task itself stays small).
    let outcome = tokio::select! {
        outcome = Box::pin(handshake(stream, peer, &shared, &mut reloads)) => outcome,
        _ = phase.wait_for(|p| *p != Phase::Running) => Handshake::Abandoned,
        () = ticket.evicted() => {
            debug!(peer.addr = %peer, "closed in its handshake to admit a newer connection");
            Handshake::Abandoned
        }
    };
    drop(ticket);
    match outcome {
        Handshake::Done(tls, material) => {
            let Some(slot) = established_slot(&shared, &mut phase).await else {
                return;
            };
            Box::pin(serve(tls, material, peer, shared.clone(), reloads)).await;
            drop(slot);
        }
        Handshake::Refused(tcp) => {
            // The refusal is written: the place goes to the next client now, and the socket
            // lingers outside the limits (within a bound of its own) so the alert is read.
            drop(place);
            if let Some(_lingering) = shared.connections.linger() {
                linger_close(tcp).await;
            }
        }
        Handshake::Abandoned => {}
    }
}

/// A slot under `--max-connections` for a connection that finished its handshake; it waits
/// while they are all taken (`None`: the server shut down meanwhile).
async fn established_slot(
    shared: &Arc<Shared>,
    phase: &mut watch::Receiver<Phase>,
) -> Option<Slot> {
    let connections = &shared.connections;
    if let Ok(permit) = connections.slots.clone().try_acquire_owned() {
        return Some(Slot::new(permit, connections));
    }
    shared.watchdog.counts.hit(Limit::MaxConnections);
    let logged = connections.log_limit_now();
    if logged {
        warn!(
            max_connections = connections.max,
            "connection limit reached: new connections wait until one closes"
        );
    }
    let permit = tokio::select! {
        permit = connections.slots.clone().acquire_owned() => permit.ok()?,
        _ = phase.wait_for(|p| *p != Phase::Running) => return None,
    };
    if logged {
        info!("below the connection limit again: accepting");
    }
    Some(Slot::new(permit, connections))
}

/// What every request on one connection needs to know about it.
struct ConnectionInfo {
    peer: SocketAddr,
    client: String,
    counters: ClientMetrics,
    /// The policy admitted the client (and, behind a proxy, its identity can be forwarded);
    /// otherwise every request gets 403.
    admitted: bool,
    forwarded: Option<ForwardedIdentity>,
    activity: Arc<Activity>,
    /// HTTP/2 (by ALPN); otherwise HTTP/1.1.
    h2: bool,
    /// Told when a denied client has been answered: its connection then closes.
    denied_answered: Notify,
    /// The body every request on this connection gets when not forwarded: "hello, NAME",
    /// or the 403 for a denied client. Made once; each response shares it.
    answer: Bytes,
    /// The same answer for a request that prefers HTML: the browser view.
    page: Page,
    /// Upgraded requests (WebSocket) joined to the application: the connection lasts
    /// until they end.
    tunnels: Tunnels,
}

/// HTTP on an established TLS connection, by ALPN: HTTP/2 when the client agreed to it,
/// HTTP/1.1 otherwise. `material` is what verified the client.
async fn serve(
    tls: TlsStream<Wire>,
    material: Arc<TlsMaterial>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    reloads: watch::Receiver<Arc<TlsMaterial>>,
) {
    let at = time::OffsetDateTime::now_utc();
    let (tcp, conn) = tls.get_ref();
    let local = tcp.get_ref().local_addr().ok();
    let report = TlsReport::negotiated(conn, conn.server_name());
    let presented = conn.peer_certificates().unwrap_or_default();
    // Authorize by the leaf the handshake verified, parsed here: the rest of the chain is
    // whatever the client chose to send, so it must never stand in for an unparsable leaf,
    // and only the certificates whose signatures link the leaf to our CA are logged or
    // forwarded.
    let chain = material.paths.verified(presented);
    let leaf = chain.leaf.as_ref();
    let client = leaf
        .map(CertInfo::identity)
        .unwrap_or_else(|| "unknown".into());
    log_state(peer, &report, &client, &chain, &reloads.borrow());
    let decision = shared.access.decide(leaf);
    if let Decision::Denied { why, .. } = &decision {
        shared.metrics.handshake_failed(POLICY_DENIED);
        warn!(
            peer.addr = %peer,
            client,
            reason = POLICY_DENIED,
            why = %why,
            tried = %decision.tried(),
            "identity denied: no --allow rule matched; its requests get 403 (gRPC: PERMISSION_DENIED)"
        );
    }
    // An admitted client's requests carry its identity to the upstream: built now, once,
    // and a client whose identity cannot be forwarded is answered 403, never forwarded.
    let mut refusal = (!decision.admitted()).then(|| decision.forbidden_body(&client));
    let forwarded = match (&shared.proxy, decision.admitted()) {
        (Some(_), true) => {
            let on_path: Vec<CertificateDer<'_>> = presented
                .first()
                .into_iter()
                .chain(chain.path.iter().filter_map(|(i, _)| presented.get(*i)))
                .map(|der| CertificateDer::from(der.as_ref()))
                .collect();
            match ForwardedIdentity::from_chain(&on_path) {
                Ok(id) => Some(id),
                Err(why) => {
                    shared.metrics.handshake_failed(IDENTITY_UNFORWARDABLE);
                    warn!(
                        peer.addr = %peer,
                        client,
                        reason = IDENTITY_UNFORWARDABLE,
                        why = %why,
                        "the client's identity cannot be forwarded to the upstream; its requests get 403 (gRPC: PERMISSION_DENIED)"
                    );
                    refusal = Some(format!(
                        "forbidden: {client} cannot be forwarded to the application: {why}\n"
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    if let Decision::Admitted { rule, matched } = &decision {
        info!(peer.addr = %peer, client, rule = %rule, matched = matched.as_str(), "identity admitted");
    }
    let admitted = refusal.is_none();
    if admitted {
        shared.metrics.handshake_succeeded();
    }
    // Kept to verify the client again after a reload.
    let verified: Vec<CertificateDer<'static>> =
        presented.iter().map(|c| c.clone().into_owned()).collect();
    let h2 = report.alpn.as_deref() == Some("h2");
    let activity = Activity::new(!h2);
    let answer = refusal.unwrap_or_else(|| format!("hello, {client}\n"));
    // The browser view's facts, gathered now; the page is made only if a request asks.
    let page = Page::new(Facts {
        peer,
        local,
        at,
        report,
        sent: presented.len(),
        client: chain,
        identity: client.clone(),
        material,
        decision,
        answer: answer.clone(),
        admitted,
    });
    let answer = Bytes::from(answer);
    let info = Arc::new(ConnectionInfo {
        peer,
        counters: shared.metrics.client(&client),
        client,
        admitted,
        forwarded,
        activity: activity.clone(),
        h2,
        denied_answered: Notify::new(),
        answer,
        page,
        tunnels: Tunnels::new(
            shared.watchdog.idle_timeout,
            shared.phase.clone(),
            shared.watchdog.counts.clone(),
            activity.clone(),
        ),
    });

    let for_service = (info.clone(), shared.clone());
    // hyper keeps room for one request's future per connection, idle or not: boxed, that
    // room is a pointer, and a request's state is allocated while it is served.
    let service = service_fn(move |req| {
        let (info, shared) = for_service.clone();
        Box::pin(async move { Ok::<_, Infallible>(handle(req, &info, &shared).await) })
    });
    let io = TokioIo::new(Tracked::new(tls, activity));
    let watched = || Watched {
        peer,
        client: &info.client,
        activity: &info.activity,
        denied_answered: &info.denied_answered,
        verified: &verified,
    };
    let (watchdog, phase) = (&shared.watchdog, shared.phase.clone());
    if h2 {
        let conn = shared.http2.serve_connection(io, service);
        let shutdown = |c: Pin<&mut _>| http2::Connection::graceful_shutdown(c);
        watchdog
            .drive(conn, shutdown, watched(), phase, &shared.tls, reloads)
            .await;
    } else {
        let conn = shared.http1.serve_connection(io, service).with_upgrades();
        let shutdown = |c: Pin<&mut _>| http1::UpgradeableConnection::graceful_shutdown(c);
        watchdog
            .drive(conn, shutdown, watched(), phase, &shared.tls, reloads)
            .await;
    }
    // An upgraded connection lives on as its tunnels: they keep its place until they end, and
    // end when its client no longer verifies after a reload.
    let tunnels = &info.tunnels;
    watchdog
        .follow_tunnels(tunnels.finish(), || tunnels.close(), watched(), &shared.tls)
        .await;
}

/// One request: logged, then denied, refused ([`request::check`]), forwarded, or answered
/// with the client's name.
async fn handle(
    req: Request<Incoming>,
    info: &ConnectionInfo,
    shared: &Shared,
) -> Response<ResponseBody> {
    let guard = RequestGuard::new(&info.activity);
    let client = info.client.as_str();
    info!(
        peer.addr = %info.peer,
        client,
        method = %req.method(),
        path = %escape_controls(req.uri().path()),
        version = ?req.version(),
        headers = %Redacted(req.headers()),
        "Header"
    );
    let response = if !info.admitted && grpc::is_grpc(req.headers()) {
        // A gRPC client reads its refusal from grpc-status, not the HTTP status.
        info.denied_answered.notify_one();
        let why = String::from_utf8_lossy(&info.answer);
        grpc::status_response(GrpcStatus::PermissionDenied, &why)
    } else if !info.admitted {
        let mut denied = answer(&req, info, StatusCode::FORBIDDEN);
        if !info.h2 {
            denied
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        info.denied_answered.notify_one();
        denied
    } else if let Err(refusal) = request::check(&req) {
        warn!(
            peer.addr = %info.peer,
            client,
            reason = refusal.code(),
            status = refusal.status().as_u16(),
            why = %refusal,
            "refused the request"
        );
        refusal.response(!info.h2)
    } else if let Some(proxy) = &shared.proxy {
        match &info.forwarded {
            Some(identity) => {
                let req = req.map(|body| WatchedBody::request(body, info.activity.clone()));
                let _waiting = AppWait::new(&info.activity);
                proxy
                    .forward(req, identity, info.peer, client, &info.tunnels)
                    .await
            }
            // serve() denies such a client; never forward without an identity.
            None => text_response(
                StatusCode::FORBIDDEN,
                format!("forbidden: {client} cannot be forwarded\n"),
            ),
        }
    } else {
        answer(&req, info, StatusCode::OK)
    };
    info.counters.request(response.status());
    response.map(|body| WatchedBody::response(body, guard).boxed_unsync())
}

/// The server's own answer on this connection, with `status`: the browser view when the
/// request prefers HTML, otherwise the plain text. Both vary by `Accept`.
fn answer(
    req: &Request<Incoming>,
    info: &ConnectionInfo,
    status: StatusCode,
) -> Response<ResponseBody> {
    if page::prefers_html(req.headers()) {
        return info.page.response(status);
    }
    let mut response = text_response(status, info.answer.clone());
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// Logs `State` and `Certificate chain`, once per connection. Names from certificates are
/// the client's words (x509-parser does not escape them): they are logged as quoted,
/// escaped strings, and only for the leaf and the certificates on its path.
fn log_state(
    peer: SocketAddr,
    r: &TlsReport,
    client: &str,
    chain: &PeerPath,
    material: &TlsMaterial,
) {
    info!(
        peer.addr = %peer,
        tls.version = %r.version,
        tls.cipher_suite = %r.cipher_suite,
        tls.key_exchange = %r.key_exchange,
        tls.handshake_complete = r.handshake_complete,
        tls.resumed = r.resumed,
        tls.alpn = r.alpn.as_deref().unwrap_or("none"),
        tls.sni = r.sni.as_deref().unwrap_or("none"),
        client,
        "State"
    );
    let leaf = chain.leaf.iter().map(|c| (0, c));
    let path = chain.path.iter().map(|(i, c)| (*i, c));
    for (index, cert) in leaf.chain(path) {
        info!(
            peer.addr = %peer,
            index,
            subject = cert.subject.as_str(),
            issuer = cert.issuer.as_str(),
            sans = cert.sans_text().as_str(),
            "Certificate chain"
        );
    }
    if chain.left_out > 0 {
        info!(
            peer.addr = %peer,
            left_out = chain.left_out,
            "the client sent certificates that are not on its path to the CA (their signatures do not link its leaf to the CA, or they do not parse); they are neither logged nor forwarded"
        );
    }
    // What the handshake (or, for a resumed session, the check after it) established.
    let ca = chain.anchor(&material.cas).map_or_else(
        || "a CA in the CA file".to_string(),
        |ca| ca.subject.clone(),
    );
    let revocation = match material.crls.len() {
        0 => String::new(),
        n => format!(", and is on none of the {n} revocation lists"),
    };
    // The leaf's serial and fingerprint, so that after a leak one grep finds every
    // connection that used it.
    let (serial, sha256) = chain
        .leaf
        .as_ref()
        .map(|leaf| (leaf.serial_hex(), leaf.fingerprint()))
        .unwrap_or_default();
    info!(
        peer.addr = %peer,
        client,
        client.serial = %serial,
        client.sha256 = %sha256,
        ca = ca.as_str(),
        purpose = "clientAuth",
        tls.resumed = r.resumed,
        "client verified: its certificate chains to the CA this server trusts, is within its \
         dates, is meant for client authentication (clientAuth){revocation}"
    );
}

/// Headers for the log, with the value of every header that carries a credential replaced
/// by `<redacted>` (see [`carries_credential`]).
struct Redacted<'a>(&'a HeaderMap);

/// Whether a header's value is a credential: `authorization`, `proxy-authorization`,
/// `cookie`, `set-cookie`, and every name containing `token`, `secret`, `password`,
/// `passwd`, `api-key`, `apikey`, `api_key`, `session` or `credential`.
pub(super) fn carries_credential(name: &str) -> bool {
    const EXACT: [&str; 4] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ];
    const PARTS: [&str; 9] = [
        "token",
        "secret",
        "password",
        "passwd",
        "api-key",
        "apikey",
        "api_key",
        "session",
        "credential",
    ];
    let name = name.to_ascii_lowercase();
    EXACT.contains(&name.as_str()) || PARTS.iter().any(|p| name.contains(p))
}

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (name, value) in self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if carries_credential(name.as_str()) {
                write!(f, "{name}=<redacted>")?;
            } else {
                write!(f, "{name}={:?}", String::from_utf8_lossy(value.as_bytes()))?;
            }
        }
        Ok(())
    }
}
