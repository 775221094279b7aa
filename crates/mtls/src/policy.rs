//! Authorization, separate from authentication: which verified clients are admitted.
//!
//! The TLS handshake *authenticates* a client (its certificate chains to our CA, is current,
//! is not revoked, is meant for client authentication). An [`AccessPolicy`] then
//! *authorizes* it by its identity: a URI SAN (`--allow-uri`, a SPIFFE ID; a pattern ending
//! in `/*` admits everything under that path), a DNS SAN (`--allow-dns`) or its subject's
//! common name (`--allow-cn`). No rule at all admits every client the CA vouches for.
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

    /// Whether this rule admits the certificate `leaf`.
    pub fn admits(&self, leaf: &CertInfo) -> bool {
        match self {
            Rule::Uri(pattern) => leaf.uris().any(|uri| uri_matches(pattern, uri)),
            Rule::Dns(name) => leaf.sans.iter().any(|s| match s {
                San::Dns(d) => d.trim_end_matches('.').eq_ignore_ascii_case(name),
                _ => false,
            }),
            Rule::Cn(cn) => leaf.common_name.as_deref() == Some(cn.as_str()),
        }
    }
}

/// `pattern` equals `uri`, or ends in `/*` and `uri` lies below its stem.
fn uri_matches(pattern: &str, uri: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(stem) if stem.ends_with('/') => uri.len() > stem.len() && uri.starts_with(stem),
        _ => uri == pattern,
    }
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
    /// This rule admitted the client.
    Admitted(Rule),
    /// No rule admitted the client; these were tried.
    Denied(Vec<Rule>),
}

impl AccessPolicy {
    /// Decides for a verified client whose leaf certificate is `leaf` (`None`: the chain did
    /// not parse, which only a rule-less policy admits).
    pub fn decide(&self, leaf: Option<&CertInfo>) -> Decision {
        if self.rules.is_empty() {
            return Decision::Open;
        }
        let found = leaf.and_then(|leaf| self.rules.iter().find(|r| r.admits(leaf)));
        match found {
            Some(rule) => Decision::Admitted(rule.clone()),
            None => Decision::Denied(self.rules.clone()),
        }
    }
}

impl Decision {
    /// Whether the client may be served.
    pub fn admitted(&self) -> bool {
        !matches!(self, Decision::Denied(_))
    }

    /// The rules tried, as one log field: `uri spiffe://mtls.demo/client-a, cn Client A`.
    pub fn tried(&self) -> String {
        match self {
            Decision::Denied(rules) => list(rules),
            _ => String::new(),
        }
    }

    /// The body of the 403 a denied client gets; it names the client and what was tried.
    pub fn forbidden_body(&self, identity: &str) -> String {
        format!(
            "forbidden: {identity} is not admitted: no rule matched (tried: {})\n",
            self.tried()
        )
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
        let now = time::OffsetDateTime::now_utc();
        CertInfo {
            subject: format!("CN={cn}"),
            issuer: "CN=CA".into(),
            common_name: Some(cn.into()),
            serial: "01".into(),
            not_before: now,
            not_after: now,
            sans,
            key: String::new(),
            signature: String::new(),
            ca: Some(false),
            path_len: None,
            key_usage: Vec::new(),
            ext_key_usage: Vec::new(),
            subject_key_id: None,
            authority_key_id: None,
            sha256: String::new(),
            self_signed: false,
            spki: Vec::new(),
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

    #[test]
    fn an_exact_uri_admits_only_that_uri() {
        let rule = Rule::uri("spiffe://mtls.demo/client-a").expect("rule");
        let policy = AccessPolicy {
            rules: vec![rule.clone()],
        };
        assert_eq!(
            policy.decide(Some(&client_a())),
            Decision::Admitted(rule.clone())
        );
        let b = client(
            "Client B",
            vec![San::Uri("spiffe://mtls.demo/client-b".into())],
        );
        let denied = policy.decide(Some(&b));
        assert_eq!(denied, Decision::Denied(vec![rule]));
        assert_eq!(
            denied.forbidden_body("Client B (spiffe://mtls.demo/client-b)"),
            "forbidden: Client B (spiffe://mtls.demo/client-b) is not admitted: no rule matched \
             (tried: uri spiffe://mtls.demo/client-a)\n"
        );
    }

    #[test]
    fn a_uri_pattern_ending_in_slash_star_admits_what_lies_below_it() {
        let rule = Rule::uri("spiffe://mtls.demo/*").expect("rule");
        assert!(rule.admits(&client_a()));
        let nested = client("x", vec![San::Uri("spiffe://mtls.demo/ns/x".into())]);
        assert!(rule.admits(&nested));
        let other = client("y", vec![San::Uri("spiffe://mtls.demo.evil/x".into())]);
        assert!(!rule.admits(&other));
        let bare = client("z", vec![San::Uri("spiffe://mtls.demo/".into())]);
        assert!(!rule.admits(&bare), "the stem itself names nobody");
    }

    #[test]
    fn dns_rules_ignore_case_and_cn_rules_do_not() {
        let host = client("svc", vec![San::Dns("API.Example.test".into())]);
        assert!(Rule::dns("api.example.test").expect("rule").admits(&host));
        assert!(!Rule::dns("example.test").expect("rule").admits(&host));
        assert!(Rule::cn("Client A").expect("rule").admits(&client_a()));
        assert!(!Rule::cn("client a").expect("rule").admits(&client_a()));
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
        assert!(!policy.decide(None).admitted());
    }
}
