//! The mTLS-terminating reverse proxy (`--upstream`): it forwards each admitted request to
//! the application and tells it who the client is. How it talks to the application
//! (`upstream`): `http://` HTTP/1.1, `h2c://` HTTP/2 without TLS (gRPC servers), or
//! `https://` TLS, verifying the application against `--upstream-ca` and the `--upstream`
//! host and presenting the proxy's own certificate (`upstream_tls`, `connector`), reloaded
//! with the server's material.
//!
//! A client must never be able to speak for the proxy, so from every request (`hygiene`):
//! - every header whose name holds an underscore is removed, whatever it is called
//!   (nginx's default, `underscores_in_headers off`): WSGI, CGI, PHP and Rack fold `_` and
//!   `-` into one name, so the application would see a client's `Client_Cert` or
//!   `X_Forwarded_For` merged with the proxy's own header. The log names the headers
//!   removed (never their values);
//! - every client-certificate header of any proxy is removed, whatever its case:
//!   [`CLIENT_CERT_HEADERS`] is the one list, names and prefixes, of this proxy's four,
//!   nginx's `X-SSL-*`, `SSL-Client-*`, `X-Client-Cert*`, `X-Client-Verify` and
//!   `X-Client-*-DN`, Traefik's `X-Forwarded-Tls-Client-Cert(-Info)`, AWS's
//!   `X-Amzn-Mtls-Clientcert*` and IIS ARR's `X-ARR-ClientCert`. The log names those too.
//!
//! Then the proxy adds, from the leaf the handshake verified and the certificates on its
//! path ([`crate::report::PeerPath`]; `identity`):
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
//! Over HTTP/2 these headers are gRPC metadata, set by the proxy alone just the same.
//!
//! `forward`: bodies stream in both directions, trailers included (gRPC's `grpc-status`);
//! `TE: trailers` is the one hop-by-hop header passed on; HTTP/2 `cookie` fields are joined
//! into one. Connections to the upstream are pooled, and at most `--upstream-max-in-flight`
//! requests (default [`DEFAULT_MAX_IN_FLIGHT`]) are in flight to it at once, whatever
//! clients do: a request's slot belongs to its exchange with the application (a task of
//! its own), and is released when the application's response has been received and its
//! body sent or dropped, or the request failed; never because a client went away (an
//! HTTP/2 client that resets its streams frees no slot). Each phase has its limit: the
//! connection (`--upstream-connect-timeout`, TLS included), the response head
//! (`--upstream-first-byte-timeout`), and each pause in a response body that waits for the
//! application (the stall timeout, `--idle-timeout`: a body that keeps arriving, however
//! slowly, is never cut; one that stops is ended as an error, never as a complete
//! response). An upstream that cannot be reached gets the client a 502 that says so (the
//! details go to the log); one whose TLS fails gets a 502 that says why in words
//! ([`crate::explain`]), logged once per cause.
//!
//! `tunnel`: an HTTP/1.1 upgrade (WebSocket), or an HTTP/2 extended CONNECT for one (RFC
//! 8441), from an admitted client goes to the application as an HTTP/1.1 upgrade with the
//! identity headers; its 101 joins the two connections. `grpc`: a gRPC client is answered in gRPC's terms (HTTP 200 with
//! `grpc-status`) when the server refuses it itself.

mod connector;
mod forward;
pub mod grpc;
mod identity;
mod tunnel;
mod upstream;
mod upstream_tls;

// Header hygiene is shared with `client proxy`: it lives in crate::hygiene.
use crate::hygiene;

pub use forward::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, Proxy, ProxyLimits,
};
pub use hygiene::{
    ADDRESS_HEADERS, CLIENT_CERT_HEADERS, CertHeader, NamePattern, strip_identity_headers,
    strip_underscored,
};
pub use identity::{ForwardedIdentity, IDENTITY_UNFORWARDABLE, Unforwardable, rfc4514, url_escape};
pub use tunnel::{Tunnels, tunnels_protocol};
pub use upstream::{Protocol, Upstream, UpstreamError};
pub use upstream_tls::{UpstreamTls, UpstreamTlsFiles};
