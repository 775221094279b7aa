//! `certificate renew NAME --watch`: a long-running process that keeps one short-lived
//! leaf fresh. It renews the leaf once a set share of its lifetime has passed (two thirds
//! by default, moved by a little random jitter so that many watchers do not all renew at
//! once), through [`renew`](super::issue::renew): under the folder's lock, the new key and
//! certificate written atomically, so a server or `client proxy` watching the files picks
//! the new pair up.
//!
//! A failure that may pass (the folder busy, a full disk) is retried with a growing pause,
//! a bounded number of times; one that cannot (the CA expired, its key gone, the leaf
//! deleted) ends the watch with that error, so the process exits non-zero with the reason.

use std::fmt;
use std::future::Future;
use std::task::Poll;

use time::{Duration, OffsetDateTime};

use super::folder;
use super::issue::{self, Outcome};
use crate::certinfo::CertInfo;
use crate::error::{Error, Result};
use crate::files::CertsDir;
use crate::format::{format_span, format_time, now};
use crate::pki::{KeyType, Validity};

/// Renew after this share of the lifetime unless told otherwise.
pub const DEFAULT_SHARE: f64 = 2.0 / 3.0;

/// The due time moves by up to this fraction of itself, either way.
const JITTER: f64 = 0.05;

/// Failures in a row that are retried before the watch gives up.
pub const MAX_FAILURES: u32 = 6;

/// The first pause after a failure; each further one doubles, up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::seconds(1);

/// The longest pause between two attempts.
const LONGEST_PAUSE: Duration = Duration::minutes(1);

/// How often the leaf is read again while waiting (someone may renew it by hand).
const RECHECK: Duration = Duration::minutes(1);

/// How the watch renews.
#[derive(Clone, Copy, Debug)]
pub struct WatchOptions {
    /// Renew once this share of the lifetime has passed (strictly between 0 and 1).
    pub share: f64,
    /// The renewed certificates' lifetime [default: as long as the current one's].
    pub length: Option<Duration>,
    /// Their key algorithm [default: the current one's].
    pub key_type: Option<KeyType>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            share: DEFAULT_SHARE,
            length: None,
            key_type: None,
        }
    }
}

/// What the watch has to say, one line each.
#[derive(Debug)]
pub enum Event<'a> {
    /// Watching a certificate (at the start, and when someone else renewed it).
    Watching {
        /// `NAME`.
        name: &'a str,
        /// The certificate now in `NAME.crt`.
        info: &'a CertInfo,
        /// When it will be renewed.
        due: OffsetDateTime,
        /// The share of its lifetime that is.
        share: f64,
        /// It lives longer than the lifetime asked for (this long): renewed now.
        shorter: Option<Duration>,
    },
    /// A renewal was written.
    Renewed {
        /// `NAME`.
        name: &'a str,
        /// What `renew` did.
        outcome: &'a Outcome,
        /// When the new one will be renewed.
        due: OffsetDateTime,
    },
    /// A renewal failed and will be tried again.
    Retrying {
        /// `NAME`.
        name: &'a str,
        /// Why it failed.
        error: &'a Error,
        /// Failures in a row so far.
        attempt: u32,
        /// The pause before the next attempt.
        pause: Duration,
    },
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Watching {
                name,
                info,
                shorter: Some(asked),
                ..
            } => writeln!(
                f,
                "watching {name}.crt (serial {}, valid until {}): it lives {}, longer than the \
                 {} asked for, so it is renewed now",
                info.serial_hex(),
                format_time(info.not_after),
                format_span(Validity::of(info).length()),
                format_span(*asked)
            ),
            Event::Watching {
                name,
                info,
                due,
                share,
                shorter: None,
            } => writeln!(
                f,
                "watching {name}.crt (serial {}, valid until {}): renewal due at {} ({:.0}% of \
                 its lifetime)",
                info.serial_hex(),
                format_time(info.not_after),
                format_time(*due),
                share * 100.0
            ),
            Event::Renewed { name, outcome, due } => writeln!(
                f,
                "renewed {name}: serial {}, sha256 {}, valid until {}{}; next renewal at {}",
                outcome.info.serial_hex(),
                outcome.info.fingerprint(),
                format_time(outcome.info.not_after),
                if outcome.clamped {
                    " (cut to its CA's end: rotate the CA before then)"
                } else {
                    ""
                },
                format_time(*due)
            ),
            Event::Retrying {
                name,
                error,
                attempt,
                pause,
            } => writeln!(
                f,
                "renewing {name} failed (attempt {attempt} of {MAX_FAILURES}): {error}; trying \
                 again in {}",
                format_span(*pause)
            ),
        }
    }
}

/// When a certificate with this validity is due for renewal: `share` of its lifetime
/// after it was issued, moved by up to [`JITTER`] either way, and always before it ends.
pub fn due(info: &CertInfo, share: f64) -> OffsetDateTime {
    let validity = Validity::of(info);
    let jitter = (random_unit() * 2.0 - 1.0) * JITTER;
    // Halfway between the share and the end at most: the jitter never pushes past expiry.
    let fraction = (share * (1.0 + jitter)).min((1.0 + share) / 2.0);
    validity.issued() + validity.length() * fraction
}

/// A random number in [0, 1), from the system's generator (0.5 if it fails: no jitter).
fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    match aws_lc_rs::rand::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Whether a failed renewal may succeed if tried again: the folder was busy, or a write
/// failed (a full disk). Everything else (the CA expired, a key or the leaf gone, a CA
/// that is not one) stays as it is until a person acts.
pub fn may_pass(error: &Error) -> bool {
    matches!(
        error,
        Error::Busy { .. } | Error::Write { .. } | Error::Io { .. }
    )
}

/// Keeps `NAME.crt` renewed until `stop` resolves (Ok: the number of renewals) or it can no
/// longer be renewed ([`Error::WatchEnded`], with the reason). Each event goes to `report` as it happens.
pub async fn watch(
    dir: &CertsDir,
    name: &str,
    opts: WatchOptions,
    stop: impl Future<Output = ()>,
    mut report: impl FnMut(&Event<'_>),
) -> Result<u64> {
    folder::check_entry_name(name)?;
    tokio::pin!(stop);
    let mut renewals = 0;
    let mut failures = 0;
    // The serial of the certificate being waited on, and when it is due.
    let mut waiting: Option<(Vec<u8>, OffsetDateTime)> = None;
    // Poll `stop` once before anything is printed: a signal handler installs itself on its
    // first poll, so a SIGTERM sent right after the first line ends the watch cleanly
    // instead of killing the process.
    let stopped = std::future::poll_fn(|cx| Poll::Ready(stop.as_mut().poll(cx).is_ready()));
    if stopped.await {
        return Ok(0);
    }
    loop {
        let current = folder::stored_below(dir, name, "renew")
            .map_err(|e| ended(name, e))?
            .info;
        let at = match &waiting {
            Some((serial, at)) if *serial == current.serial => *at,
            _ => {
                // A leaf that lives longer than the lifetime asked for is renewed at once: the
                // watch was started to keep it short-lived.
                let shorter = opts
                    .length
                    .filter(|asked| Validity::of(&current).length() > *asked + *asked / 2);
                let at = match shorter {
                    Some(_) => now(),
                    None => due(&current, opts.share),
                };
                report(&Event::Watching {
                    name,
                    info: &current,
                    due: at,
                    share: opts.share,
                    shorter,
                });
                waiting = Some((current.serial.clone(), at));
                at
            }
        };
        let left = at - now();
        if left.is_positive() {
            tokio::select! {
                () = tokio::time::sleep(left.min(RECHECK).unsigned_abs()) => continue,
                () = &mut stop => return Ok(renewals),
            }
        }
        let attempt = {
            let (dir, name) = (dir.clone(), name.to_string());
            tokio::task::spawn_blocking(move || {
                let validity = opts.length.map(Validity::starting_now);
                issue::renew(&dir, &name, validity, opts.key_type, &[])
            })
        };
        let result = tokio::select! {
            joined = attempt => joined.map_err(|e| Error::Invalid(format!("the renewal did not finish: {e}")))?,
            () = &mut stop => return Ok(renewals),
        };
        match result {
            Ok(outcome) => {
                renewals += 1;
                failures = 0;
                let due = due(&outcome.info, opts.share);
                report(&Event::Renewed {
                    name,
                    outcome: &outcome,
                    due,
                });
                waiting = Some((outcome.info.serial.clone(), due));
            }
            Err(error) if may_pass(&error) && failures < MAX_FAILURES => {
                failures += 1;
                let pause = (FIRST_PAUSE * 2_i32.pow(failures - 1)).min(LONGEST_PAUSE);
                report(&Event::Retrying {
                    name,
                    error: &error,
                    attempt: failures,
                    pause,
                });
                tokio::select! {
                    () = tokio::time::sleep(pause.unsigned_abs()) => {}
                    () = &mut stop => return Ok(renewals),
                }
            }
            Err(error) => return Err(ended(name, error)),
        }
    }
}

/// The error that ends the watch of `name`.
fn ended(name: &str, error: Error) -> Error {
    Error::WatchEnded {
        name: name.to_string(),
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{self, CertAuthority, LeafSpec, Usage};

    fn leaf(validity: Validity) -> CertInfo {
        let ca = CertAuthority::new_root(
            pki::demo_subject("CA Company", "CA"),
            KeyType::default(),
            Validity::days(365),
        )
        .expect("a CA");
        let issued = ca
            .issue(&LeafSpec {
                subject: pki::demo_subject("X Company", "x"),
                sans: vec![pki::parse_san("URI:spiffe://mtls.demo/x").expect("san")],
                usage: Usage::Client,
                key_type: KeyType::default(),
                validity,
            })
            .expect("a leaf");
        CertInfo::parse(&issued.der).expect("parse")
    }

    #[test]
    fn renewal_falls_due_near_the_share_of_the_lifetime_counted_from_issue() {
        for (validity, length) in [
            (Validity::minutes(1), Duration::minutes(1)),
            (Validity::hours(8), Duration::hours(8)),
            (Validity::days(90), Duration::days(90)),
        ] {
            let info = leaf(validity);
            assert_eq!(Validity::of(&info).length(), length);
            let issued = Validity::of(&info).issued();
            for _ in 0..20 {
                let at = due(&info, DEFAULT_SHARE) - issued;
                let ideal = length * DEFAULT_SHARE;
                assert!(
                    (at - ideal).abs() <= ideal * JITTER + Duration::seconds(1),
                    "{at} is not near {ideal}"
                );
                assert!(at < length);
            }
            // A share near the end never falls due after it.
            assert!(due(&info, 0.99) < info.not_after);
        }
    }

    #[test]
    fn only_a_busy_folder_or_a_failed_write_is_tried_again() {
        let busy = Error::Busy {
            dir: "certs".into(),
            lock: "certs/.lock".into(),
            waited: std::time::Duration::from_secs(60),
        };
        assert!(may_pass(&busy));
        let expired = Error::IssuerNotCurrent {
            label: "certs/ca.crt".into(),
            expired: true,
            at: now(),
        };
        assert!(!may_pass(&expired));
    }
}
