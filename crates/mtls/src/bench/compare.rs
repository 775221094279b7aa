//! `--compare`: full, resumed and keep-alive mTLS back to back, then plain TLS without a
//! client certificate, so one table shows what client authentication and session reuse
//! cost. Plain TLS needs a server that lets a client in without a certificate; ours never
//! does, so the row is tried once first and, when refused, says why instead.

use super::{BenchSettings, Bound, Mode, Progress, Run, label, load, only_loopback};
use crate::client::Url;
use crate::error::{Error, Failure, Result};

/// What `--compare` measured: one row per mode, then plain TLS.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The server measured.
    pub url: String,
    /// Connections per row.
    pub connections: usize,
    /// The bound of each row.
    pub bound: Bound,
    /// Full, resumed and keep-alive mTLS, then plain TLS.
    pub rows: Vec<Row>,
}

/// One row of a comparison.
#[derive(Clone, Debug)]
pub enum Row {
    /// Measured.
    Measured(Box<Run>),
    /// Not measured, and why.
    NotPossible {
        /// What the row would have measured.
        label: String,
        /// Why it was not.
        why: String,
    },
}

/// The name of the comparison's last row.
pub(super) const PLAIN_TLS: &str = "plain TLS, full handshakes";

/// Runs full, resumed and keep-alive mTLS back to back with `settings`' certificate, then
/// full handshakes without a client certificate against `plain_url` (default: the same
/// server), first trying one to see whether that server allows it.
pub async fn compare(
    settings: &BenchSettings,
    plain_url: Option<&Url>,
    progress: &Progress,
) -> Result<Comparison> {
    settings.check()?;
    if settings.client.identity.is_none() {
        return Err(Error::Usage(
            "--compare measures what client authentication costs, so it needs a client \
             certificate: -c a (or --cert and --key), not --no-cert"
                .into(),
        ));
    }
    only_loopback(&settings.client.url, "--url", settings.allow_remote).await?;
    if let Some(url) = plain_url {
        only_loopback(url, "--plain-url", settings.allow_remote).await?;
    }
    let mut plain = BenchSettings {
        mode: Mode::Full,
        ..settings.clone()
    };
    plain.client.identity = None;
    if let Some(url) = plain_url {
        plain.client.url = url.clone();
    }
    let mut rows = Vec::new();
    for mode in [Mode::Full, Mode::Resumed, Mode::KeepAlive] {
        let one = BenchSettings {
            mode,
            ..settings.clone()
        };
        let run = load::measure(&one, label(mode, true), progress).await?;
        rows.push(Row::Measured(Box::new(run)));
    }
    let label = PLAIN_TLS.to_string();
    rows.push(match load::try_one(&plain).await? {
        Ok(()) => Row::Measured(Box::new(load::measure(&plain, label, progress).await?)),
        Err(refused) => Row::NotPossible {
            why: not_possible(&refused, plain_url.is_some()),
            label,
        },
    });
    Ok(Comparison {
        url: settings.client.url.to_string(),
        connections: settings.connections,
        bound: settings.bound,
        rows,
    })
}

/// Why the plain-TLS row could not be measured: most often, the server requires a client
/// certificate, which is the point of mutual TLS. Without `--plain-url` (`plain_url_given`
/// false), says how to measure it elsewhere.
fn not_possible(refused: &Error, plain_url_given: bool) -> String {
    use rustls::AlertDescription as A;
    let demanded = match refused.failure() {
        Some(Failure::PeerRefused {
            alert: alert @ (A::CertificateRequired | A::HandshakeFailure | A::BadCertificate),
        }) => Some(crate::format::alert_name(*alert)),
        Some(Failure::ClosedAfterHandshake) => Some("it closed the connection".into()),
        _ => None,
    };
    let elsewhere = match plain_url_given {
        true => "",
        false => {
            "; to measure plain TLS, give --plain-url with a server of yours that does not ask \
             for one"
        }
    };
    match demanded {
        Some(how) => format!(
            "not possible: the server requires a client certificate (it refused a connection \
             without one: {how}); that is what mutual TLS is for{elsewhere}"
        ),
        None => {
            format!("not measured: a connection without a client certificate failed: {refused}")
        }
    }
}
