//! One connection attempt through rustls, and what the server did with it.
//!
//! The attempt is the library client's own path (the same config builder, connect, and the
//! `Watched` stream that keeps a TLS 1.3 server's late alert), speaking HTTP/1.1 only, so a
//! refusal is read the same way `client` reads it: in the handshake, after it, or in the
//! HTTP answer. Every phase is bounded by the probe's time limit.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Empty;
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::client::{self, HttpFailure, Url, Watched};
use crate::error::{Error, Failure};
use crate::explain::{self, Side, alert_name};
use crate::report::TlsReport;
use crate::tls::SeenChain;
use crate::trace::Recorder;

/// The user agent every probe sends, so a server's log shows which requests were the
/// audit's.
pub(crate) const USER_AGENT_VALUE: &str = concat!("mtls-client-audit/", env!("CARGO_PKG_VERSION"));

/// Largest part of an answer kept for the report.
const KEPT_BODY: usize = 200;

/// What the server did with one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerDid {
    /// It ended the handshake before it finished: with this alert, or (`None`) by closing.
    RefusedInHandshake {
        /// The alert's name (`certificate_required`), if it sent one.
        alert: Option<String>,
    },
    /// The handshake finished on our side, then the server refused (TLS 1.3 judges the
    /// client's certificate after the client's last flight): with this alert, or by closing.
    RefusedAfterHandshake {
        /// The alert's name, if it sent one.
        alert: Option<String>,
    },
    /// It closed the connection without a word (plain HTTP on a TLS port, say).
    Closed,
    /// It answered the request over TLS.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// It answered a plain-HTTP request with plain HTTP.
    AnsweredPlain {
        /// The HTTP status.
        status: u16,
    },
    /// It answered a hand-made ClientHello with a ServerHello: it agreed to talk.
    Hello {
        /// The version it chose (`TLSv1.0`).
        version: String,
        /// The cipher suite it chose, by its IANA name.
        suite: String,
    },
    /// We could not agree with it on a version or suite (rustls refused what it chose).
    Incompatible {
        /// What rustls said.
        detail: String,
    },
    /// It answered with something that is neither TLS nor HTTP.
    Garbled {
        /// What arrived, printable.
        detail: String,
    },
    /// Nothing arrived within the probe's limit.
    TimedOut {
        /// The phase that timed out.
        phase: &'static str,
        /// The limit.
        after: Duration,
    },
    /// We could not connect.
    Unreachable {
        /// Why.
        detail: String,
    },
    /// Our side refused the server (its certificate does not verify against --ca): the
    /// audit's setup is wrong, not the server.
    WeRefusedServer {
        /// The explanation, as `client` words it.
        detail: String,
    },
    /// The connection broke in a way that says nothing about the certificate.
    Broke {
        /// Why.
        detail: String,
    },
}

impl fmt::Display for ServerDid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alert = |a: &Option<String>| match a {
            Some(name) => format!("with alert {name}"),
            None => "by closing the connection (no alert)".to_string(),
        };
        match self {
            ServerDid::RefusedInHandshake { alert: a } => {
                write!(f, "refused in the handshake {}", alert(a))
            }
            ServerDid::RefusedAfterHandshake { alert: a } => {
                write!(f, "refused after the handshake {}", alert(a))
            }
            ServerDid::Closed => f.write_str("closed the connection without answering"),
            ServerDid::Answered { status, .. } => write!(f, "answered HTTP {status}"),
            ServerDid::AnsweredPlain { status } => {
                write!(f, "answered HTTP {status} over plain HTTP")
            }
            ServerDid::Hello { version, suite } => {
                write!(f, "agreed: ServerHello with {version}, {suite}")
            }
            ServerDid::Incompatible { detail } => write!(f, "no common parameters ({detail})"),
            ServerDid::Garbled { detail } => write!(f, "answered neither TLS nor HTTP ({detail})"),
            ServerDid::TimedOut { phase, after } => {
                write!(f, "no answer to {phase} within {}s", after.as_secs_f32())
            }
            ServerDid::Unreachable { detail } => write!(f, "unreachable ({detail})"),
            ServerDid::WeRefusedServer { .. } => {
                f.write_str("not judged: our side refused the server's certificate")
            }
            ServerDid::Broke { detail } => write!(f, "the connection broke ({detail})"),
        }
    }
}

impl From<Error> for ServerDid {
    fn from(e: Error) -> Self {
        match e {
            Error::Timeout { after, .. } => ServerDid::TimedOut {
                phase: "the connection",
                after,
            },
            other => ServerDid::Unreachable {
                detail: other.to_string(),
            },
        }
    }
}

/// One rustls attempt: what the server did, and what the handshake showed.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    /// What the server did.
    pub did: ServerDid,
    /// The server sent a CertificateRequest.
    pub asked: bool,
    /// The CA names it listed.
    pub ca_names: Vec<String>,
    /// The negotiated state, when the handshake finished.
    pub tls: Option<TlsReport>,
    /// The failure in `client`'s words, when there was one (for the good client).
    pub why: Option<String>,
}

/// Connects with `config` (whose resolver records into `seen`), sends `GET` over
/// HTTP/1.1, and reads the answer; each phase bounded by `limit`.
pub(crate) async fn attempt(
    target: &Url,
    config: Arc<ClientConfig>,
    seen: &SeenChain,
    limit: Duration,
) -> Attempt {
    let mut out = Attempt {
        did: ServerDid::Broke {
            detail: "not tried".into(),
        },
        asked: false,
        ca_names: Vec::new(),
        tls: None,
        why: None,
    };
    let tcp = match client::connect(target, limit).await {
        Ok(tcp) => tcp,
        Err(e) => {
            out.did = e.into();
            return out;
        }
    };
    let handshake =
        TlsConnector::from(config).connect(target.server_name(), Recorder::new(tcp, None));
    let outcome = tokio::time::timeout(limit, handshake).await;
    out.asked = seen.asked();
    out.ca_names = seen.ca_names();
    let tls = match outcome {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            let (did, why) = in_handshake(&err, seen);
            out.did = did;
            out.why = why;
            return out;
        }
        Err(_) => {
            out.did = ServerDid::TimedOut {
                phase: "the TLS handshake",
                after: limit,
            };
            return out;
        }
    };
    let report = TlsReport::negotiated(tls.get_ref().1, None);
    let tls13 = report.version == "TLSv1.3";
    out.tls = Some(report);
    let request = Request::get(target.path())
        .header(HOST, target.authority())
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            out.did = ServerDid::Broke {
                detail: format!("cannot build the request: {e}"),
            };
            return out;
        }
    };
    let recorded = Arc::new(Mutex::new(None));
    let sent = client::send(Watched::new(tls, recorded.clone()), request, false);
    out.did = match tokio::time::timeout(limit, sent).await {
        Ok(Ok((_, status, body))) => ServerDid::Answered {
            status: status.as_u16(),
            body: body.chars().take(KEPT_BODY).collect(),
        },
        Ok(Err(HttpFailure(err))) => {
            let recorded = recorded.lock().ok().and_then(|slot| slot.clone());
            let rustls = recorded
                .as_ref()
                .or_else(|| client::find_rustls(err.as_ref()));
            let cx = explain::Context {
                arrived: tls13.then_some(explain::Arrival::AfterHandshake),
                ..seen.told(&explain::Context::default())
            };
            match rustls {
                Some(rustls::Error::AlertReceived(a)) => {
                    out.why = Some(
                        Failure::from_rustls(&rustls::Error::AlertReceived(*a))
                            .explain(Side::Client, &cx),
                    );
                    ServerDid::RefusedAfterHandshake {
                        alert: Some(alert_name(*a)),
                    }
                }
                _ if client::is_closed(err.as_ref()) => {
                    out.why = Some(Failure::ClosedAfterHandshake.explain(Side::Client, &cx));
                    ServerDid::RefusedAfterHandshake { alert: None }
                }
                Some(other) => ServerDid::Broke {
                    detail: other.to_string(),
                },
                None => ServerDid::Broke {
                    detail: err.to_string(),
                },
            }
        }
        Err(_) => ServerDid::TimedOut {
            phase: "the request",
            after: limit,
        },
    };
    out
}

/// A handshake that failed: the server's alert or close, or our own refusal of it.
fn in_handshake(err: &io::Error, seen: &SeenChain) -> (ServerDid, Option<String>) {
    let cx = explain::Context {
        arrived: Some(explain::Arrival::InHandshake),
        ..seen.told(&explain::Context::default())
    };
    let Some(tls) = client::find_rustls(err) else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => (ServerDid::RefusedInHandshake { alert: None }, None),
            _ => (
                ServerDid::Broke {
                    detail: err.to_string(),
                },
                None,
            ),
        };
    };
    let chain = crate::report::describe_chain(&seen.get());
    let failure = Failure::from_rustls(tls).with_peer_chain(&chain);
    let why = Some(failure.explain(Side::Client, &cx));
    let did = match tls {
        rustls::Error::AlertReceived(a) => ServerDid::RefusedInHandshake {
            alert: Some(alert_name(*a)),
        },
        rustls::Error::InvalidCertificate(_) => ServerDid::WeRefusedServer {
            detail: why.clone().unwrap_or_default(),
        },
        rustls::Error::PeerIncompatible(_) => ServerDid::Incompatible {
            detail: tls.to_string(),
        },
        rustls::Error::InvalidMessage(_) => ServerDid::Garbled {
            detail: tls.to_string(),
        },
        other => ServerDid::Broke {
            detail: other.to_string(),
        },
    };
    (did, why)
}
