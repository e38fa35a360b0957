//! Logging: tracing with a pretty or JSON format, one span per request carrying its request id,
//! so every line a request causes can be found with that id. Tokens, keys and passwords are
//! never logged: the span records method, path, status and latency only.
//!
//! Text a client chose (a token's `sub`, an error quoting its input) is logged through
//! [`escaped`]: the pretty format writes a field's `Display` as it is, so a newline in it would
//! start a line of the client's own and an escape sequence would reach the terminal of whoever
//! reads the log. The method (an HTTP token), the path (the HTTP parser refuses spaces, controls
//! and bytes above 0x7e in it) and the request id ([`RequestId`]) need no escaping.

mod access_line;
mod batched_writer;
mod timestamp;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

use self::batched_writer::BatchedWriter;
pub use self::batched_writer::FlushGuard;

/// Installs the global subscriber; `RUST_LOG` wins over `log.level`. Safe to call twice.
///
/// Lines are written out in batches by a thread of their own ([`batched_writer`]), so an actix
/// worker never waits on a `write(2)` to a busy disk or a slow pipe. Keep the returned guard until
/// the process ends; dropping it writes out what is buffered.
pub fn init(settings: &LogSettings) -> std::io::Result<FlushGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: writing them into a log file was a visible share of an
    // update check's cost (bench/PROFILE.md).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (writer, guard) = BatchedWriter::spawn(std::io::stdout())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_timer(timestamp::UtcMicros)
        .with_ansi(ansi)
        .with_writer(writer.clone());
    let json = matches!(settings.format, LogFormat::Json);
    let installed = match json {
        true => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .finish()
            .with(ClientParseErrors)
            .try_init(),
        false => builder.compact().finish().with(ClientParseErrors).try_init(),
    };
    if installed.is_ok() && !ansi {
        access_line::install(writer, json);
    }
    Ok(guard)
}

/// Drops actix-http's ERROR "stream error: request parse error: ..." (a NUL byte in a header, a
/// request line that is not HTTP): the client's mistake, answered 400 by the HTTP parser before
/// the request reaches the service, so nothing this service did wrong, and no ERROR to page
/// anyone for. actix-http logs the other connection errors at their own call sites.
struct ClientParseErrors;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ClientParseErrors {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let metadata = event.metadata();
        if *metadata.level() != tracing::Level::ERROR || !metadata.target().starts_with("actix_http::") {
            return true;
        }
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}").starts_with("stream error: request parse error");
                }
            }
        }
        let mut parse_error = Message(false);
        event.record(&mut parse_error);
        !parse_error.0
    }
}

/// `text` for a log field: as it is, but for backslashes, quotes, controls and other unprintable
/// characters (newlines, ESC, C1 controls), which are written as Rust escapes (`\n`, `\u{1b}`).
pub fn escaped(text: &str) -> std::str::EscapeDebug<'_> {
    text.escape_debug()
}

/// The header a request id arrives in, and leaves in (on responses and forwarded requests).
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

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

/// The path of the update check, which a fleet calls all day: logged at `debug` when it
/// succeeds, since `/metrics` counts checks by outcome and a line per poll would be most of the
/// log (and about a fifth of a check's instructions, bench/PROFILE.md). Failed checks are logged
/// at `info` like every other request.
const UPDATE_CHECK_PATH: &str = "/v1/firmware/check";

/// The one line of a request the proxy forwarded (see `startup::forward_proxied`): the fields of
/// the request span and its closing line, without the span, written by [`access_line`].
pub fn log_forwarded<B>(response: &ServiceResponse<B>) {
    let request = response.request();
    let extensions = request.extensions();
    access_line::log(&access_line::AccessFields {
        request_id: extensions.get::<RequestId>().map_or("", |r| r.0.as_str()),
        method: request.method().as_str(),
        path: request.path(),
        status: response.status().as_u16(),
    });
}

/// The root span of each request, named after our request id rather than tracing-actix-web's.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        if request.path() == UPDATE_CHECK_PATH {
            return tracing::debug_span!(
                "request",
                %request_id,
                method = %request.method(),
                path = %request.path(),
                status = tracing::field::Empty,
            );
        }
        tracing::info_span!(
            "request",
            %request_id,
            method = %request.method(),
            path = %request.path(),
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, request) = match outcome {
            Ok(response) => (response.status().as_u16(), Some(response.request())),
            Err(error) => (error.as_response_error().status_code().as_u16(), None),
        };
        span.record("status", status);
        let _entered = span.enter();
        match request {
            Some(request) if request.path() == UPDATE_CHECK_PATH => {
                if status < 400 {
                    tracing::debug!(status, "request finished");
                } else {
                    // The span may be off at `info`: the line carries what the span would.
                    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
                    tracing::info!(request_id, method = %request.method(), path = request.path(), status, "request finished");
                }
            }
            _ => tracing::info!(status, "request finished"),
        }
    }
}
