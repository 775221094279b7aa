//! gRPC in its own terms: a client that speaks gRPC (`content-type: application/grpc...`)
//! reads a refusal from `grpc-status` and `grpc-message`, not from the HTTP status, so the
//! server's own refusals (a denied identity, an application that cannot be reached) are
//! written as gRPC writes them: HTTP 200, and the status in a "trailers-only" response (one
//! HEADERS frame that ends the stream; gRPC over HTTP/2, "Responses").

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::server::response::{ResponseBody, text_response};

/// The gRPC status codes the server answers with itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcStatus {
    /// 4: the application did not answer in time.
    DeadlineExceeded,
    /// 7: the caller's identity is not admitted.
    PermissionDenied,
    /// 13: the request could not be read.
    Internal,
    /// 14: the application cannot be reached (or its TLS refused the proxy).
    Unavailable,
}

impl GrpcStatus {
    /// The number `grpc-status` carries.
    pub fn code(self) -> u8 {
        match self {
            GrpcStatus::DeadlineExceeded => 4,
            GrpcStatus::PermissionDenied => 7,
            GrpcStatus::Internal => 13,
            GrpcStatus::Unavailable => 14,
        }
    }
}

/// Whether the request speaks gRPC: its content type is `application/grpc`, or one of
/// its forms (`application/grpc+proto`, `application/grpc-web`, ...).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim_start().to_ascii_lowercase();
            v.strip_prefix("application/grpc")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';', '-']))
        })
}

/// A trailers-only gRPC response: HTTP 200, `content-type: application/grpc`,
/// `grpc-status` and a `grpc-message` that says why (percent-encoded, as the specification
/// asks), and no body.
pub fn status_response(status: GrpcStatus, message: &str) -> Response<ResponseBody> {
    let mut response = text_response(StatusCode::OK, "");
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from(u16::from(status.code())),
    );
    if let Ok(value) = HeaderValue::from_str(&encode_message(message.trim_end())) {
        headers.insert(HeaderName::from_static("grpc-message"), value);
    }
    response
}

/// `grpc-message` encoding: every byte outside printable ASCII, and `%`, as `%XX` (of the
/// message's UTF-8).
pub fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body;

    #[test]
    fn grpc_requests_are_told_by_their_content_type() {
        let with = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            is_grpc(&h)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("application/grpc-web+proto"));
        assert!(with("Application/GRPC; charset=utf-8"));
        assert!(!with("application/grpcx"));
        assert!(!with("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn a_refusal_is_trailers_only_with_a_percent_encoded_message() {
        let response = status_response(
            GrpcStatus::PermissionDenied,
            "forbidden: \"Client B\" is 100% not admitted: no rule matched ✓\n",
        );
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["grpc-status"], "7");
        assert_eq!(
            h["grpc-message"],
            "forbidden: \"Client B\" is 100%25 not admitted: no rule matched %E2%9C%93"
        );
        assert!(response.body().is_end_stream(), "no body: trailers-only");
    }
}
