//! The proxy's fast path in front of the router, and the answer to paths no route takes.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};
use nowatch_ota_core::request_path::unsafe_path;

use crate::error::ApiError;
use crate::proxy::Forwarder;
use crate::telemetry;

/// Requests under a proxy prefix go to the backend before the router sees them: no local route
/// can match them (`proxy.prefixes` may not overlap the paths served here, checked at start-up),
/// and trying every local route first, most with a regex, was a large share of a proxied
/// request's cost (bench/PROFILE.md). Unsafe paths (dot segments however encoded,
/// backslash, NUL) are refused, not forwarded.
///
/// Outside tracing-actix-web's logger: its span per request, entered at every poll of the
/// exchange and of the body, was the largest share of a proxied request's cost. A
/// forwarded request is logged with one line carrying the same fields instead
/// ([`telemetry::log_forwarded`]); the proxy's own warnings name the request id.
pub async fn forward_proxied(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let forwarder = req.app_data::<web::Data<Forwarder>>().cloned();
    let Some((forwarder, tag)) =
        forwarder.and_then(|f| f.tag_of(req.path()).map(str::to_owned).map(|tag| (f, tag)))
    else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let response = if let Some(why) = unsafe_path(req.path()) {
        req.error_response(ApiError::field("path", why))
    } else {
        let payload = req.extract::<web::Payload>().await?;
        let (request, _) = req.into_parts();
        match forwarder.forward(request.clone(), payload, &tag).await {
            Ok(response) => ServiceResponse::new(request, response),
            Err(error) => ServiceResponse::from_err(error, request),
        }
    };
    telemetry::log_forwarded(&response);
    Ok(response)
}

/// Every request no local route takes: 400 if its path is unsafe, else 404.
pub async fn fallback(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(why) = unsafe_path(req.path()) {
        return Err(ApiError::field("path", why));
    }
    Err(ApiError::NotFound(format!("Cannot {} {}", req.method(), req.path())))
}
