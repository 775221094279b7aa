//! The bodies the server and `client proxy` answer with: a short text (or the server's
//! browser view), or an upstream's streamed body, behind one type.

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// Any error a body may end with (an upstream's, or a response it stopped sending).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response: a short text, or an upstream's streamed body.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// No body at all (a 101's).
pub fn empty_body() -> ResponseBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A plain-text response.
pub fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    full_response(status, "text/plain; charset=utf-8", body)
}

/// A plain-text answer that says why, after the status's reason in lower case:
/// `forbidden: ...`.
pub fn explained(status: StatusCode, why: impl std::fmt::Display) -> Response<ResponseBody> {
    let what = status.canonical_reason().unwrap_or("refused");
    text_response(status, format!("{}: {why}\n", what.to_ascii_lowercase()))
}

/// A response whose whole body is `body`, of type `content_type`.
pub fn full_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
