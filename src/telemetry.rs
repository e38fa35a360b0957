//! Logging: tracing with a pretty or JSON format, one span per request carrying its request id,
//! so every line a request causes can be found with that id. Tokens, keys and passwords are
//! never logged: the span records method, path, status and latency only.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; `RUST_LOG` wins over `log.level`. Safe to call twice.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: writing them into a log file cost about 10 % of an update
    // check's instructions (bench/PROFILE.md).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// The id of the request being served: from a sane `x-request-id`, or generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    /// Accepts a client's id only if it cannot smuggle anything into logs or headers.
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v)
                if !v.is_empty()
                    && v.len() <= 128
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
            {
                Self(v.to_owned())
            }
            _ => Self(uuid::Uuid::new_v4().to_string()),
        }
    }
}

/// The root span of each request, named after our request id rather than tracing-actix-web's.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        tracing::info_span!(
            "request",
            %request_id,
            method = %request.method(),
            path = %request.path(),
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.as_response_error().status_code().as_u16(),
        };
        span.record("status", status);
        let _entered = span.enter();
        tracing::info!(status, "request finished");
    }
}
