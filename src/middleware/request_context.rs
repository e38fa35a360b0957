//! The outermost middleware: request ids, the NOWATCH error shape, request metrics.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};

use crate::error::{ApiError, ErrorBody};
use crate::proxy::PassThrough;
use crate::state::AppState;
use crate::telemetry::{self, REQUEST_ID_HEADER, RequestId};

/// Outermost middleware: assigns the request id, puts every error into the NOWATCH shape (with
/// the path and a timestamp), keeps 5xx details out of bodies and in the log, and stamps
/// `x-request-id` on every response.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let request_id =
        RequestId::from_header(req.headers().get(&REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()));
    // The response's `x-request-id`, made before the id moves into the request's extensions.
    let stamp = HeaderValue::from_str(&request_id.0).ok();
    req.extensions_mut().insert(request_id);
    let started = std::time::Instant::now();
    // Handler and extractor errors arrive as responses carrying the error; an `Err` here could
    // only come from inner middleware, and actix renders it itself.
    let mut response = next.call(req).await?.map_into_boxed_body();
    let status = response.status();
    let request = response.request();
    let forwarded = request.extensions().get::<PassThrough>().is_some();
    if let Some(state) = request.app_data::<web::Data<AppState>>() {
        // The route pattern, never the raw path: ids would make every request its own series.
        // Forwarded requests are counted as one route here (and by tag in the proxy's metrics).
        let route = match forwarded {
            true => "proxy".into(),
            false => request.match_pattern().unwrap_or_else(|| "unmatched".into()),
        };
        let labels = [crate::metrics::method_label(request.method()), route.as_str()];
        state.metrics.http_duration.with_label_values(&labels).observe(started.elapsed().as_secs_f64());
        state.metrics.http_requests.with_label_values(&[labels[0], labels[1], status.as_str()]).inc();
    }
    if status.as_u16() >= 400 && !forwarded {
        let (method, path) = (request.method(), request.path());
        let api_error = response.response().error().and_then(|e| e.as_error::<ApiError>());
        let messages = match (api_error, response.response().error()) {
            (Some(api), _) => api.messages(),
            _ if status.is_server_error() => vec!["Internal server error".into()],
            (None, Some(other)) => vec![other.to_string()],
            (None, None) => vec![default_message(status, method, path)],
        };
        if status.is_server_error() {
            let detail = response.response().error().map(|e| format!("{e:?}")).unwrap_or_default();
            let extensions = request.extensions();
            let request_id = extensions.get::<RequestId>().map_or("", |id| id.0.as_str());
            tracing::error!(%request_id, %status, error = %telemetry::escaped(&detail), "request failed");
        }
        let body = ErrorBody::new(status, messages, path);
        let mut rebuilt = HttpResponse::build(status);
        for (name, value) in response.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                rebuilt.append_header((name.clone(), value.clone()));
            }
        }
        let rebuilt = rebuilt.json(body);
        response = response.into_response(rebuilt);
    }
    if let Some(value) = stamp {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

fn default_message(status: StatusCode, method: &actix_web::http::Method, path: &str) -> String {
    match status {
        StatusCode::NOT_FOUND => format!("Cannot {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("Method {method} is not allowed on {path}"),
        _ => status.canonical_reason().unwrap_or("Error").to_owned(),
    }
}
