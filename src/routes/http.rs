//! What handlers read off a request besides their extractors: ids in the path and the
//! conditional headers, parsed by actix's typed headers.

use actix_web::HttpRequest;
use actix_web::http::header::{EntityTag, Header, IfNoneMatch, IfRange};
use uuid::Uuid;

use crate::error::ApiError;

/// A path's `{id}`: 400 naming `id` unless it is a UUID.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::field("id", format!("{raw:?} is not a UUID")))
}

/// Whether `If-None-Match` is `*` or names `etag` (weak comparison, RFC 9110 13.1.2). A
/// malformed header names nothing.
pub fn if_none_match(req: &HttpRequest, etag: &EntityTag) -> bool {
    match IfNoneMatch::parse(req) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(etag)),
        Err(_) => false,
    }
}

/// `If-Range`, if sent: whether it names `etag` (strong comparison, RFC 9110 13.1.5). A date,
/// or a malformed value, never matches: the whole representation is sent.
pub fn if_range(req: &HttpRequest, etag: &EntityTag) -> Option<bool> {
    req.headers().contains_key(actix_web::http::header::IF_RANGE).then(|| match IfRange::parse(req) {
        Ok(IfRange::EntityTag(tag)) => tag.strong_eq(etag),
        Ok(IfRange::Date(_)) | Err(_) => false,
    })
}
