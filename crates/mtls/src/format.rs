//! Values as people read and type them: hex bytes, timestamps, time spans, durations,
//! sizes and TLS alert names. Every binary prints and parses these the same way.

use std::borrow::Cow;
use std::time::Duration;

use rustls::AlertDescription;
use time::OffsetDateTime;

/// Bytes as upper-case hex, joined by `sep`: `4A:0B:FF` (serials, key ids, fingerprints).
pub fn hex(bytes: &[u8], sep: &str) -> String {
    let mut out = String::with_capacity(bytes.len() * (2 + sep.len()));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// Now, in whole seconds (what certificates and CRLs can encode).
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// A timestamp the way the reports print it: `2026-11-24 03:56:56 UTC`.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A timestamp as RFC 3339 (`2026-11-24T03:56:56Z`), for JSON.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format_time(t))
}

/// Parses a moment as typed on the command line: RFC 3339 (`2026-06-01T12:00:00Z`, with
/// fractional seconds and any offset; a space may stand for the `T`), or a date alone
/// (`2026-06-01`), which means midnight UTC.
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    let s = text.trim();
    let date_only = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(s, date_only) {
        return Ok(date.midnight().assume_utc());
    }
    // RFC 3339 allows a space between date and time (section 5.6, note); time's parser does
    // not, so put the T back.
    let s = match s.split_at_checked(10) {
        Some((date, rest)) if rest.starts_with(' ') => format!("{date}T{}", &rest[1..]),
        _ => s.to_string(),
    };
    OffsetDateTime::parse(&s, &Rfc3339).map_err(|e| {
        format!(
            "{text:?} is not a time: write RFC 3339 (2026-06-01T12:00:00Z, \
             2026-06-01T14:00:00.5+02:00) or a date (2026-06-01, midnight UTC) ({e})"
        )
    })
}

/// A span in the largest sensible unit: "364 days", "5 hours", "42 minutes".
pub fn format_span(d: time::Duration) -> String {
    let secs = d.whole_seconds().unsigned_abs();
    let (n, unit) = if secs >= 2 * 86_400 {
        (secs / 86_400, "days")
    } else if secs >= 2 * 3_600 {
        (secs / 3_600, "hours")
    } else if secs >= 120 {
        (secs / 60, "minutes")
    } else {
        (secs, "seconds")
    };
    format!("{n} {unit}")
}

/// Parses a duration as typed on the command line: `500ms`, `10s`, `2m`, `1h`, `7d`, or `0`.
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
        "d" => n.checked_mul(86_400_000),
        _ => return Err(bad()),
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Parses a share typed as a percentage (`67`, `67%`, `12.5%`), strictly between 0 and
/// 100, as a fraction (0.67).
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let s = text.trim();
    let number = s.strip_suffix('%').unwrap_or(s).trim();
    match number.parse::<f64>() {
        Ok(p) if p > 0.0 && p < 100.0 => Ok(p / 100.0),
        _ => Err(format!(
            "{text:?} is not a share: write a percentage between 0 and 100, like 67 or 50%"
        )),
    }
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

/// Text from a peer (a name in a certificate, a request path) made safe to print: C0 and C1
/// control characters, DEL and the Unicode bidirectional overrides become `\u{..}`, so a
/// value can neither forge a log line nor reorder what a terminal shows. Borrowed when there
/// is nothing to escape.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The alert's name as the TLS RFCs spell it (`certificate_expired`).
pub fn alert_name(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let known = match alert {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::RecordOverflow => "record_overflow",
        A::HandshakeFailure => "handshake_failure",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::InappropriateFallback => "inappropriate_fallback",
        A::UserCanceled => "user_canceled",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::UnrecognisedName => "unrecognized_name",
        A::BadCertificateStatusResponse => "bad_certificate_status_response",
        A::UnknownPSKIdentity => "unknown_psk_identity",
        A::CertificateRequired => "certificate_required",
        A::NoApplicationProtocol => "no_application_protocol",
        other => return format!("{other:?}"),
    };
    known.to_string()
}

/// The width of each column of a table (in characters, not bytes), so that padding every
/// cell to its column's width lines the table up.
pub fn column_widths<'a, const N: usize>(
    rows: impl Iterator<Item = &'a [String; N]> + Clone,
) -> [usize; N] {
    std::array::from_fn(|i| {
        rows.clone()
            .map(|row| row[i].chars().count())
            .max()
            .unwrap_or(0)
    })
}

/// `text` in lines of at most `width` characters, broken between words (a word longer
/// than `width` has a line of its own).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
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
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        let err = parse_duration("60").expect_err("a unit is required");
        assert!(err.contains("like 500ms, 10s, 2m"), "{err}");
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn shares_are_percentages_strictly_between_0_and_100() {
        assert_eq!(parse_percent("50"), Ok(0.5));
        assert_eq!(parse_percent("10%"), Ok(0.1));
        for bad in ["0", "100", "150%", "-5", "two thirds"] {
            let err = parse_percent(bad).expect_err(bad);
            assert!(err.contains("between 0 and 100"), "{err}");
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_date_at_midnight_utc() {
        let at = |s: &str| parse_time(s).map(|t| t.unix_timestamp());
        assert_eq!(at("2026-06-01"), Ok(1_780_272_000));
        assert_eq!(at("2026-06-01T00:00:00Z"), Ok(1_780_272_000));
        assert_eq!(at("2026-06-01 02:00:00+02:00"), Ok(1_780_272_000));
        assert_eq!(at("2026-05-31t20:00:00-04:00"), Ok(1_780_272_000));
        let frac = parse_time("2026-06-01T00:00:00.75Z").expect("fractional seconds");
        assert_eq!(
            (frac.unix_timestamp(), frac.millisecond()),
            (1_780_272_000, 750)
        );
        for bad in ["2026-06-01T00:00:00", "June 1st", "2026-13-01", ""] {
            let err = parse_time(bad).expect_err(bad);
            assert!(err.contains("RFC 3339"), "{err}");
        }
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

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(escape_controls("Client A"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("a\nb"), "a\\u{a}b");
        assert_eq!(escape_controls("CN=x\u{0}y"), "CN=x\\u{0}y");
        assert_eq!(escape_controls("/p\u{9b}31m"), "/p\\u{9b}31m");
        assert_eq!(escape_controls("a\u{7f}\u{202e}b"), "a\\u{7f}\\u{202e}b");
        assert_eq!(escape_controls("café"), "café");
    }

    #[test]
    fn hex_joins_upper_case_pairs() {
        assert_eq!(hex(&[0x4a, 0x0b, 0xff], ":"), "4A:0B:FF");
        assert_eq!(hex(&[], ":"), "");
        assert_eq!(hex(&[1, 2], ""), "0102");
    }
}
