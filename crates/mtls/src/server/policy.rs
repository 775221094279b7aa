//! Authorization, separate from authentication: which verified clients are admitted.
//!
//! The TLS handshake *authenticates* a client (its certificate chains to our CA, is current,
//! is not revoked, is meant for client authentication). An [`AccessPolicy`] then
//! *authorizes* it by its identity: a URI SAN (`--allow-uri`, a SPIFFE ID; a pattern ending
//! in `/*` admits everything under that path), a DNS SAN (`--allow-dns`) or its subject's
//! common name (`--allow-cn`). No rule at all admits every client the CA vouches for.
//!
//! URI rules are strict, because a URI names its owner only when it is read one way:
//! - a certificate with more than one URI SAN is never admitted by a URI rule (a SPIFFE
//!   identity has exactly one, and logs, metrics and forwarded headers must name the one
//!   that was admitted);
//! - a pattern admits only URIs below it in plain form: no `.` or `..` segments, no empty
//!   segments, no `%`, `?`, `#`, `\\`, userinfo or port, and for `spiffe:` the SPIFFE ID
//!   grammar (a lowercase trust domain of letters, digits, `.`, `-`, `_`; path segments of
//!   letters, digits, `.`, `-`, `_`). An exact rule compares the whole URI.
//!
//! A client no rule admits has already finished its handshake, so it is answered with
//! HTTP 403 and a body that names it, rather than a TLS alert it could not read.

use std::fmt;

use crate::certinfo::{CertInfo, San};

/// The reason code of a denial: the `reason` log field and metrics label.
pub const POLICY_DENIED: &str = "policy_denied";

/// One `--allow-*` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A URI SAN equal to this one, or under it when the pattern ends in `/*`.
    Uri(String),
    /// A DNS SAN equal to this one (ASCII case-insensitive).
    Dns(String),
    /// The subject's common name, exactly.
    Cn(String),
}

impl Rule {
    /// Parses `--allow-uri`: a URI with a scheme; `*` only as a final `/*`.
    pub fn uri(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let Some((scheme, rest)) = t.split_once(':') else {
            return Err(format!(
                "--allow-uri {text:?} is not a URI: write it with its scheme, like spiffe://mtls.demo/client-a"
            ));
        };
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok || rest.is_empty() || t.contains(char::is_whitespace) {
            return Err(format!(
                "--allow-uri {text:?} is not a URI: write it with its scheme, like spiffe://mtls.demo/client-a"
            ));
        }
        let stem = t.strip_suffix("/*").unwrap_or(t);
        if stem.contains('*') {
            return Err(format!(
                "--allow-uri {text:?}: a wildcard may only end the pattern, as /* (like spiffe://mtls.demo/*)"
            ));
        }
        Ok(Rule::Uri(t.to_string()))
    }

    /// Parses `--allow-dns`: one DNS name, no wildcards.
    pub fn dns(text: &str) -> Result<Self, String> {
        let t = text.trim().trim_end_matches('.');
        if t.is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        {
            return Err(format!(
                "--allow-dns {text:?} is not a DNS name (letters, digits, '-' and '.'; list each name, wildcards are not matched)"
            ));
        }
        Ok(Rule::Dns(t.to_ascii_lowercase()))
    }

    /// Parses `--allow-cn`: a common name, matched exactly.
    pub fn cn(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("--allow-cn needs a common name, like \"Client A\"".into());
        }
        Ok(Rule::Cn(text.to_string()))
    }

    /// Whether this rule admits the certificate `leaf`: the value that matched (the URI SAN,
    /// the DNS SAN or the common name), or `None`.
    pub fn admits<'a>(&self, leaf: &'a CertInfo) -> Option<&'a str> {
        match self {
            Rule::Uri(pattern) => {
                let mut uris = leaf.uris();
                let uri = uris.next()?;
                if uris.next().is_some() {
                    return None;
                }
                uri_matches(pattern, uri).then_some(uri)
            }
            Rule::Dns(name) => leaf.sans.iter().find_map(|s| match s {
                San::Dns(d) if d.trim_end_matches('.').eq_ignore_ascii_case(name) => {
                    Some(d.as_str())
                }
                _ => None,
            }),
            // Several CNs are ambiguous (which one is the client?): never admitted by CN.
            Rule::Cn(cn) => match leaf.common_names.as_slice() {
                [one] if one == cn => Some(one.as_str()),
                _ => None,
            },
        }
    }
}

/// `pattern` equals `uri`, or ends in `/*` and `uri` lies below its stem in plain form.
fn uri_matches(pattern: &str, uri: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(stem) if stem.ends_with('/') => {
            uri.len() > stem.len() && uri.starts_with(stem) && plain_uri(uri)
        }
        _ => uri == pattern,
    }
}

/// Whether `uri` can be read only one way, so that "starts with the stem" means "lies
/// below it": printable ASCII without `%`, `?`, `#` or `\\`; an authority (if any) without
/// userinfo or port; path segments neither empty nor `.`/`..`; and, for `spiffe:`, the
/// SPIFFE ID grammar.
fn plain_uri(uri: &str) -> bool {
    const MAX_SPIFFE_ID: usize = 2048;
    if !uri
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b'?' | b'#' | b'\\'))
    {
        return false;
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let spiffe = scheme == "spiffe";
    if scheme.eq_ignore_ascii_case("spiffe") && !spiffe {
        return false; // the SPIFFE scheme is lowercase
    }
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            if authority.is_empty() || authority.contains(['@', ':', '[', ']']) {
                return false;
            }
            if spiffe
                && !authority
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
            {
                return false;
            }
            match path.strip_prefix('/') {
                Some(p) => p,
                None => return path.is_empty(),
            }
        }
        None if spiffe => return false,
        None => rest,
    };
    if spiffe && uri.len() > MAX_SPIFFE_ID {
        return false;
    }
    path.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && (!spiffe
                || segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)))
    })
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Uri(u) => write!(f, "uri {u}"),
            Rule::Dns(d) => write!(f, "dns {d}"),
            Rule::Cn(c) => write!(f, "cn {c}"),
        }
    }
}

/// The `--allow-*` rules together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Admit a client when any of these admits it; no rules admits every verified client.
    pub rules: Vec<Rule>,
}

/// What the policy decided for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No rules are configured: every client the CA vouches for is admitted.
    Open,
    /// A rule admitted the client.
    Admitted {
        /// The rule.
        rule: Rule,
        /// What in the certificate matched it (a URI or DNS SAN, or the common name).
        matched: String,
    },
    /// No rule admitted the client.
    Denied {
        /// The rules tried.
        tried: Vec<Rule>,
        /// Why none did.
        why: Denial,
    },
}

/// Why no rule admitted a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// No rule names the client (or its certificate did not parse).
    NoRuleMatched,
    /// URI rules are configured and the certificate has this many (more than one) URI SANs:
    /// which of them it is cannot be told, so no URI rule admits it.
    SeveralUris(usize),
    /// CN rules are configured and the certificate's subject has this many (more than one)
    /// common names: no CN rule admits it.
    SeveralCns(usize),
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NoRuleMatched => f.write_str("no rule matched"),
            Denial::SeveralUris(n) => write!(
                f,
                "no rule matched: its certificate has {n} URI SANs, and a URI rule admits only \
                 a certificate with exactly one"
            ),
            Denial::SeveralCns(n) => write!(
                f,
                "no rule matched: its certificate's subject has {n} common names, and a CN rule \
                 admits only a certificate with exactly one"
            ),
        }
    }
}

impl AccessPolicy {
    /// Decides for a verified client whose leaf certificate is `leaf` (`None`: the chain did
    /// not parse, which only a rule-less policy admits).
    pub fn decide(&self, leaf: Option<&CertInfo>) -> Decision {
        if self.rules.is_empty() {
            return Decision::Open;
        }
        let found = leaf.and_then(|leaf| {
            self.rules
                .iter()
                .find_map(|r| r.admits(leaf).map(|m| (r, m)))
        });
        if let Some((rule, matched)) = found {
            return Decision::Admitted {
                rule: rule.clone(),
                matched: matched.to_string(),
            };
        }
        let uris = leaf.map_or(0, |l| l.uris().count());
        let cns = leaf.map_or(0, |l| l.common_names.len());
        let has = |kind: fn(&Rule) -> bool| self.rules.iter().any(kind);
        Decision::Denied {
            tried: self.rules.clone(),
            why: if has(|r| matches!(r, Rule::Uri(_))) && uris > 1 {
                Denial::SeveralUris(uris)
            } else if has(|r| matches!(r, Rule::Cn(_))) && cns > 1 {
                Denial::SeveralCns(cns)
            } else {
                Denial::NoRuleMatched
            },
        }
    }
}

impl Decision {
    /// Whether the client may be served.
    pub fn admitted(&self) -> bool {
        !matches!(self, Decision::Denied { .. })
    }

    /// The rules tried, as one log field: `uri spiffe://mtls.demo/client-a, cn Client A`.
    pub fn tried(&self) -> String {
        match self {
            Decision::Denied { tried, .. } => list(tried),
            _ => String::new(),
        }
    }

    /// The body of the 403 a denied client gets: it names the client and says that no rule
    /// matched (and why, when there is more to say). The rules themselves stay in the log:
    /// a client has no business learning the allowlist.
    pub fn forbidden_body(&self, identity: &str) -> String {
        let why = match self {
            Decision::Denied { why, .. } => *why,
            _ => Denial::NoRuleMatched,
        };
        format!("forbidden: {identity} is not admitted: {why}\n")
    }
}

fn list(rules: &[Rule]) -> String {
    rules
        .iter()
        .map(Rule::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(cn: &str, sans: Vec<San>) -> CertInfo {
        CertInfo {
            subject: format!("CN={cn}"),
            common_name: Some(cn.into()),
            common_names: vec![cn.into()],
            sans,
            ..crate::certinfo::tests_support::blank()
        }
    }

    fn client_a() -> CertInfo {
        client(
            "Client A",
            vec![San::Uri("spiffe://mtls.demo/client-a".into())],
        )
    }

    #[test]
    fn no_rules_admit_every_verified_client() {
        assert_eq!(
            AccessPolicy::default().decide(Some(&client_a())),
            Decision::Open
        );
    }

    fn uri_client(uris: &[&str]) -> CertInfo {
        client(
            "x",
            uris.iter().map(|u| San::Uri((*u).to_string())).collect(),
        )
    }

    #[test]
    fn an_exact_uri_admits_only_that_uri() {
        let rule = Rule::uri("spiffe://mtls.demo/client-a").expect("rule");
        let policy = AccessPolicy {
            rules: vec![rule.clone()],
        };
        assert_eq!(
            policy.decide(Some(&client_a())),
            Decision::Admitted {
                rule: rule.clone(),
                matched: "spiffe://mtls.demo/client-a".into()
            }
        );
        let b = client(
            "Client B",
            vec![San::Uri("spiffe://mtls.demo/client-b".into())],
        );
        let denied = policy.decide(Some(&b));
        assert_eq!(
            denied,
            Decision::Denied {
                tried: vec![rule],
                why: Denial::NoRuleMatched
            }
        );
        assert_eq!(
            denied.forbidden_body("Client B (spiffe://mtls.demo/client-b)"),
            "forbidden: Client B (spiffe://mtls.demo/client-b) is not admitted: no rule matched\n"
        );
    }

    #[test]
    fn a_uri_pattern_ending_in_slash_star_admits_what_lies_below_it() {
        let rule = Rule::uri("spiffe://mtls.demo/*").expect("rule");
        assert_eq!(
            rule.admits(&client_a()),
            Some("spiffe://mtls.demo/client-a")
        );
        let nested = client("x", vec![San::Uri("spiffe://mtls.demo/ns/x".into())]);
        assert!(rule.admits(&nested).is_some());
        let other = client("y", vec![San::Uri("spiffe://mtls.demo.evil/x".into())]);
        assert!(rule.admits(&other).is_none());
        let bare = client("z", vec![San::Uri("spiffe://mtls.demo/".into())]);
        assert!(rule.admits(&bare).is_none(), "the stem itself names nobody");
    }

    #[test]
    fn a_uri_pattern_refuses_uris_that_only_look_like_they_lie_below_it() {
        let rule = Rule::uri("spiffe://a/b/*").expect("rule");
        assert!(rule.admits(&uri_client(&["spiffe://a/b/x"])).is_some());
        assert!(
            rule.admits(&uri_client(&["spiffe://a/b/x.y-z_1/W"]))
                .is_some()
        );
        for uri in [
            "spiffe://a/b/../admin",
            "spiffe://a/b/./x",
            "spiffe://a/b/x/..",
            "spiffe://a/b/%2e%2e/x",
            "spiffe://a/b/%2Fx",
            "spiffe://a/b//x",
            "spiffe://a/b/x/",
            "spiffe://a/b/x?y",
            "spiffe://a/b/x#z",
            "spiffe://a/b/x?y#z",
            "spiffe://a/b/x\\..\\admin",
            "spiffe://a/b/x y",
            "spiffe://a/b/x\ny",
            "spiffe://a/b/caf\u{e9}",
            "spiffe://a/b/x:y",
            "spiffe://a/b/x@y",
        ] {
            assert!(
                rule.admits(&uri_client(&[uri])).is_none(),
                "{uri:?} was admitted by {rule}"
            );
        }
        // A sibling whose name starts like the stem's last segment is not below it.
        assert!(rule.admits(&uri_client(&["spiffe://a/bc/x"])).is_none());
        assert!(rule.admits(&uri_client(&["spiffe://a/b"])).is_none());
    }

    #[test]
    fn a_pattern_over_trust_domains_refuses_userinfo_ports_and_bad_domains() {
        let rule = Rule::uri("spiffe://*").expect("rule");
        assert!(
            rule.admits(&uri_client(&["spiffe://mtls.demo/x"]))
                .is_some()
        );
        for uri in [
            "spiffe://evil@mtls.demo/x",
            "spiffe://mtls.demo:443/x",
            "spiffe://[::1]/x",
            "spiffe://MTLS.demo/x",
            "spiffe://mtls.demo/x$y",
        ] {
            assert!(
                rule.admits(&uri_client(&[uri])).is_none(),
                "{uri:?} was admitted by {rule}"
            );
        }
        let long = format!("spiffe://mtls.demo/{}", "a".repeat(2048));
        assert!(rule.admits(&uri_client(&[&long])).is_none());
        // The SPIFFE scheme is lowercase; other schemes follow the generic checks only.
        let upper = Rule::uri("SPIFFE://*").expect("rule");
        assert!(upper.admits(&uri_client(&["SPIFFE://a/x"])).is_none());
        let urn = Rule::uri("urn:example/*").expect("rule");
        assert!(urn.admits(&uri_client(&["urn:example/a:b"])).is_some());
        assert!(urn.admits(&uri_client(&["urn:example/../a"])).is_none());
        assert!(urn.admits(&uri_client(&["urn:example//a"])).is_none());
    }

    #[test]
    fn a_leaf_with_several_uris_is_never_admitted_by_a_uri_rule() {
        let evil_first = uri_client(&["spiffe://x/evil", "spiffe://mtls.demo/client-a"]);
        let exact = Rule::uri("spiffe://mtls.demo/client-a").expect("rule");
        let pattern = Rule::uri("spiffe://mtls.demo/*").expect("rule");
        assert!(exact.admits(&evil_first).is_none());
        assert!(pattern.admits(&evil_first).is_none());
        let policy = AccessPolicy {
            rules: vec![exact, pattern],
        };
        let d = policy.decide(Some(&evil_first));
        assert!(
            matches!(
                d,
                Decision::Denied {
                    why: Denial::SeveralUris(2),
                    ..
                }
            ),
            "{d:?}"
        );
        let body = d.forbidden_body("x (spiffe://x/evil, spiffe://mtls.demo/client-a)");
        assert!(body.contains("no rule matched"), "{body}");
        assert!(body.contains("2 URI SANs"), "{body}");
        // Other kinds of rule still judge it by what they look at.
        let by_cn = AccessPolicy {
            rules: vec![Rule::cn("x").expect("rule")],
        };
        assert!(by_cn.decide(Some(&evil_first)).admitted());
    }

    #[test]
    fn dns_rules_ignore_case_and_cn_rules_do_not() {
        let host = client("svc", vec![San::Dns("API.Example.test".into())]);
        assert_eq!(
            Rule::dns("api.example.test").expect("rule").admits(&host),
            Some("API.Example.test")
        );
        assert!(
            Rule::dns("example.test")
                .expect("rule")
                .admits(&host)
                .is_none()
        );
        assert_eq!(
            Rule::cn("Client A").expect("rule").admits(&client_a()),
            Some("Client A")
        );
        assert!(
            Rule::cn("client a")
                .expect("rule")
                .admits(&client_a())
                .is_none()
        );
    }

    #[test]
    fn malformed_rules_are_refused_with_an_example() {
        let err = Rule::uri("client-a").expect_err("no scheme");
        assert!(err.contains("spiffe://mtls.demo/client-a"), "{err}");
        let err = Rule::uri("spiffe://*/x").expect_err("wildcard in the middle");
        assert!(err.contains("/*"), "{err}");
        assert!(Rule::dns("*.example.test").is_err());
        assert!(Rule::cn(" ").is_err());
    }

    #[test]
    fn a_denial_lists_every_rule_tried() {
        let policy = AccessPolicy {
            rules: vec![
                Rule::uri("spiffe://other/*").expect("rule"),
                Rule::cn("Client B").expect("rule"),
            ],
        };
        let d = policy.decide(Some(&client_a()));
        assert!(!d.admitted());
        assert_eq!(d.tried(), "uri spiffe://other/*, cn Client B");
        assert!(!d.forbidden_body("Client A").contains("spiffe://other"));
        assert!(!policy.decide(None).admitted());
    }

    #[test]
    fn a_subject_with_two_common_names_is_never_admitted_by_a_cn_rule() {
        let mut two = client("Admin", Vec::new());
        two.common_names = vec!["Admin".into(), "Client A".into()];
        for cn in ["Admin", "Client A"] {
            let policy = AccessPolicy {
                rules: vec![Rule::cn(cn).expect("rule")],
            };
            assert_eq!(
                policy.decide(Some(&two)),
                Decision::Denied {
                    tried: policy.rules.clone(),
                    why: Denial::SeveralCns(2)
                },
                "{cn}"
            );
        }
    }
}
