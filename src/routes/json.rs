//! `Json<T>`: actix's JSON body extractor (Content-Type, `server.max_json_bytes`, the errors of
//! `startup`'s `JsonConfig`), but a body that parses and breaks a field's rule is a 400 naming
//! that field by its path (`min_from_version: "1.x" is not a semantic version ...`,
//! `stages[0].percent: ...`), not the body.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // The text as sent, checked to be JSON (and sized and typed) by actix's extractor: read
        // from it, not from a `Value`, a duplicate key is still an error, not the last one wins.
        let raw = web::Json::<Box<RawValue>>::from_request(req, payload);
        Box::pin(async move { Ok(Json(from_object(raw.await?.get(), "body", "")?)) })
    }
}

/// Parses a JSON multipart part called `part`: a field that breaks its rule is named
/// `<part>.<path>` (`metadata.version: ...`).
pub fn parse_part<T: DeserializeOwned>(bytes: &[u8], part: &str) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ApiError::field(part, e))?;
    from_object(text, part, &format!("{part}."))
}

/// `value` as a `T`; serde would also read a struct from an array of its fields in order, which
/// no client means and the document does not allow.
fn from_object<T: DeserializeOwned>(text: &str, whole: &str, prefix: &str) -> Result<T, ApiError> {
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::field(whole, "must be a JSON object"));
    }
    let mut json = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| named(whole, prefix, e))?;
    json.end().map_err(|e| ApiError::field(whole, e))?;
    Ok(value)
}

/// The 400 of a body that breaks a field's rule: named `<prefix><path>`, or `whole` when the
/// body itself is wrong (not an object, a field missing).
fn named<E: std::fmt::Display>(whole: &str, prefix: &str, e: serde_path_to_error::Error<E>) -> ApiError {
    let path = e.path().to_string();
    match path.as_str() {
        "." => ApiError::field(whole, e.into_inner()),
        _ => ApiError::field(&format!("{prefix}{path}"), e.into_inner()),
    }
}
