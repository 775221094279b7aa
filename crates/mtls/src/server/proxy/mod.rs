//! The mTLS-terminating reverse proxy (`--upstream http://HOST:PORT`): it forwards each
//! admitted request to a plain-HTTP application and tells it who the client is.
//!
//! A client must never be able to forge its identity, so the headers that could carry one
//! are removed from every request first, whatever their case: the four this proxy sets
//! ([`IDENTITY_HEADERS`]) and those other proxies use for the client certificate (nginx's
//! `X-SSL-*`, `SSL-Client-*`, `X-Client-Cert*`, `X-Client-Verify`, `X-Client-*-DN`).
//! (`hygiene`). Then the proxy adds, from the leaf the handshake verified and the
//! certificates on its path ([`crate::report::PeerPath`]; `identity`):
//! - `Client-Cert` (RFC 9440): the leaf as a structured-field byte sequence, `:BASE64(DER):`;
//! - `Client-Cert-Chain` (RFC 9440): the certificates on the leaf's path that the client
//!   sent, as a list of byte sequences (absent when it sent only its leaf);
//! - `X-SSL-CERT`: the leaf as PEM, URL-escaped like nginx's `$ssl_client_escaped_cert`;
//! - `X-Forwarded-Client-Cert` (Envoy's format): `Hash=<sha256 hex of the DER>;
//!   Subject="<RFC 4514 subject>";URI=<the URI SAN>`, control characters escaped.
//!
//! These are built once per connection ([`ForwardedIdentity::from_chain`]); a client whose
//! identity cannot be put into them (its leaf does not parse, or it has more than one URI
//! SAN) is refused before any request. The addresses a client could claim (`Forwarded`,
//! `X-Forwarded-For`, `-Host`, `-Port`, `-Proto`, `X-Real-IP`) are removed too, and the
//! proxy sets `Forwarded: for=...;proto=https`, `X-Forwarded-For` and `X-Forwarded-Proto`.
//!
//! `forward`: bodies stream in both directions, without trailers (HTTP/1.1 to the application);
//! HTTP/2 `cookie` fields are joined into one. Connections to the upstream are pooled, and
//! at most [`MAX_UPSTREAM_REQUESTS`] requests are in flight to it at once. An upstream that
//! cannot be reached gets the client a 502 that says so (the details go to the log).

mod forward;
mod hygiene;
mod identity;

pub use forward::{MAX_UPSTREAM_REQUESTS, NoTrailers, Proxy, Upstream, UpstreamError};
pub use hygiene::{ADDRESS_HEADERS, IDENTITY_HEADERS, strip_identity_headers};
pub use identity::{ForwardedIdentity, IDENTITY_UNFORWARDABLE, Unforwardable, rfc4514, url_escape};
