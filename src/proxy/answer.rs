//! The upstream's answer as ours (read whole when small, else streamed), and what a failed
//! exchange means for the client.

use std::time::Duration;

use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use awc::error::{ConnectError, SendRequestError};

use super::body::{BodyFailure, ResponseBody};
use super::{Outcome, PassThrough, ProxyMetrics, headers};
use crate::error::ApiError;

/// Upstream bodies up to this size are read whole before the answer starts (as nginx's
/// `proxy_buffering` does): the head and body leave in one write without a stream and its idle
/// timer per request, and a body that breaks off is still a clean 502. Larger ones stream.
const BUFFERED_BODY_BYTES: u64 = 64 * 1024;

/// The announced length of a body small enough to read whole; `None` for anything that must
/// stream, and for HEAD, whose answer announces a length it does not send.
pub(super) fn small_body(answer: &awc::ClientResponse, method: &actix_web::http::Method) -> Option<usize> {
    if method == actix_web::http::Method::HEAD || bodiless(answer.status()) {
        return None;
    }
    content_length(answer).filter(|&length| length <= BUFFERED_BODY_BYTES).map(|length| length as usize)
}

/// Statuses whose answers never carry a body (RFC 9110 §6.4.1).
fn bodiless(status: StatusCode) -> bool {
    status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
}

fn content_length(answer: &awc::ClientResponse) -> Option<u64> {
    answer
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Our response's head: the upstream's status and end-to-end headers, less those a server in
/// front would obey (the backend may not make nginx serve a blob); the request is marked
/// [`PassThrough`].
pub(super) fn pass_back(req: &HttpRequest, answer: &awc::ClientResponse) -> actix_web::HttpResponseBuilder {
    req.extensions_mut().insert(PassThrough);
    let mut response = HttpResponse::build(answer.status());
    for (name, value) in headers::end_to_end(answer.headers(), &[]) {
        if !headers::steers_a_front_server(name) {
            response.append_header((name.clone(), value.clone()));
        }
    }
    response
}

/// The upstream's status, end-to-end headers and streamed body, as our response.
pub(super) fn stream_back(
    req: &HttpRequest,
    mut answer: awc::ClientResponse,
    idle: Duration,
    tag: &str,
    request_id: String,
    metrics: ProxyMetrics,
) -> HttpResponse {
    let status = answer.status();
    let mut response = pass_back(req, &answer);
    let length = content_length(&answer);
    let body = ResponseBody::new(answer.take_payload(), idle, tag.to_owned(), request_id, metrics);
    if bodiless(status) {
        response.finish()
    } else if let Some(length) = length {
        // Also right for HEAD: the length is announced and no body is sent.
        response.body(SizedStream::new(length, body))
    } else {
        response.body(BodyStream::new(body))
    }
}

/// What a failed exchange means for the client: a body problem is the client's, a connect or
/// protocol failure is 502, an awc-level timeout (connecting) is 504.
pub(super) fn classify(
    error: &SendRequestError,
    body: Option<BodyFailure>,
    limit: u64,
) -> (Outcome, ApiError) {
    match (body, error) {
        (Some(BodyFailure::TooLarge), _) => (Outcome::TooLarge, too_large(limit)),
        (Some(BodyFailure::Client), _) => {
            (Outcome::ClientFailed, ApiError::bad_request("body: the request body broke off"))
        }
        (None, SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout)) => {
            (Outcome::TimedOut, gateway_timeout())
        }
        (None, _) => (Outcome::Unreachable, ApiError::BadGateway("the backend could not be reached".into())),
    }
}

/// The request's `Content-Length`, if it has one; a malformed one is 400.
pub(super) fn declared_length(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()))
        .map(|parsed| parsed.ok_or_else(|| ApiError::field("Content-Length", "not a number")))
        .transpose()
}

pub(super) fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!("body: larger than the limit of {limit} bytes"))
}

pub(super) fn bad_gateway() -> ApiError {
    ApiError::BadGateway("the backend's answer broke off".into())
}

pub(super) fn gateway_timeout() -> ApiError {
    ApiError::GatewayTimeout("the backend did not answer in time".into())
}
