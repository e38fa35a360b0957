//! Building and running the application: the one place that mounts routes and middleware.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, Error, HttpMessage, HttpResponse, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::error::{ApiError, ErrorBody};
use crate::proxy::{Forwarder, Proxy, ProxyMetrics};
use crate::routes;
use crate::state::AppState;
use crate::telemetry::{self, REQUEST_ID_HEADER, RequestId, RequestSpan};

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Builds the state and binds the listener (port 0 picks a free one; see [`Self::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let address = (settings.server.host.clone(), settings.server.port);
        let workers = settings.server.workers;
        let state = web::Data::new(AppState::build(settings).await?);
        let listener = TcpListener::bind(&address).map_err(|e| {
            anyhow::anyhow!("`server.host`/`server.port`: cannot listen on {}:{}: {e}", address.0, address.1)
        })?;
        let port = listener.local_addr()?.port();
        let trusted = state.settings.server.trusted()?;
        let proxy = Proxy::from_settings(&state.settings.proxy, trusted, ProxyMetrics::new(&state.metrics))?;
        let app_state = state.clone();
        let unread_limit = Duration::from_secs(state.settings.firmware.download_idle_timeout_s);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                // One forwarder, with its own upstream connection pool, per worker.
                .app_data(web::Data::new(proxy.forwarder()))
                .configure(|cfg| mount(cfg, &app_state.settings))
                .default_service(web::to(fallback))
                .wrap(TracingLogger::<RequestSpan>::new())
                .wrap(from_fn(forward_proxied))
                .wrap(from_fn(request_context))
        })
        .on_connect(move |connection, _| cut_when_unread_for(connection, unread_limit))
        .shutdown_timeout(state.settings.server.shutdown_grace_s)
        .listen(listener)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        spawn_background_tasks(state.clone());
        Ok(Self { port, server: server.run(), state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Has the kernel cut the connection once data sent on it has gone unacknowledged for `limit`
/// (`TCP_USER_TIMEOUT`, which also bounds a zero window: a client that stopped reading). actix
/// has no write timeout, and stops polling a response body while the socket is full, so a
/// download nobody reads would otherwise hold its connection and its open image for ever. Once
/// the kernel gives up, actix's next write fails and it drops the connection and the body.
fn cut_when_unread_for(connection: &dyn std::any::Any, limit: Duration) {
    use std::os::fd::AsRawFd;
    let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else { return };
    let millis = libc::c_uint::try_from(limit.as_millis()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: the descriptor is the open socket `tcp` owns for the whole call; the option value
    // is a c_uint that outlives the call, and its size is passed with it.
    let set = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&raw const millis).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if set != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not set TCP_USER_TIMEOUT");
    }
}

/// Mounts every route and the extractor configuration that turns bad input into `ApiError`s.
fn mount(cfg: &mut web::ServiceConfig, settings: &Settings) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(settings.server.max_json_bytes)
            .error_handler(|err, _| json_error(err).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::bad_request(format!("query: {err}")).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::bad_request(format!("path: {err}")).into()),
    )
    // Devices' routes first: the router tries resources in order, and update checks are most
    // of the traffic. The root's before the release routes, whose `{id}` would take `root`.
    .configure(routes::root::mount)
    .configure(routes::firmware::mount)
    .configure(routes::health::mount)
    .configure(routes::admin_devices::mount)
    .configure(routes::admin_firmware::mount)
    .configure(routes::admin_hardware::mount)
    .configure(routes::admin_rollouts::mount)
    .configure(routes::metrics::mount)
    .configure(routes::docs::mount);
}

fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => {
            ApiError::PayloadTooLarge(format!("body: larger than the limit of {limit} bytes"))
        }
        E::ContentType => {
            ApiError::UnsupportedMediaType("body: Content-Type must be application/json".into())
        }
        E::Deserialize(e) => ApiError::bad_request(format!("body: {e}")),
        other => ApiError::bad_request(format!("body: {other}")),
    }
}

/// Requests under a proxy prefix go to the backend before the router sees them: no local route
/// can match them (`proxy.prefixes` may not overlap the paths served here, checked at start-up),
/// and trying every local route first, most with a regex, cost about a seventh of a proxied
/// request's instructions (bench/PROFILE.md). Unsafe paths (dot segments however encoded,
/// backslash, NUL) are refused, not forwarded.
///
/// Outside tracing-actix-web's logger: its span per request, entered at every poll of the
/// exchange and of the body, was about a quarter of a proxied request's instructions. A
/// forwarded request is logged with one line carrying the same fields instead
/// ([`telemetry::log_forwarded`]); the proxy's own warnings name the request id.
async fn forward_proxied(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let forwarder = req.app_data::<web::Data<Forwarder>>().cloned();
    let Some((forwarder, tag)) =
        forwarder.and_then(|f| f.tag_of(req.path()).map(str::to_owned).map(|tag| (f, tag)))
    else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let response = if let Some(why) = crate::proxy::unsafe_path(req.path()) {
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
async fn fallback(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(why) = crate::proxy::unsafe_path(req.path()) {
        return Err(ApiError::field("path", why));
    }
    Err(ApiError::NotFound(format!("Cannot {} {}", req.method(), req.path())))
}

/// Marks a request whose response must reach the client untouched even if it is an error: the
/// upstream answered it (set on the request, whose extensions exist already, not the response).
#[derive(Debug, Clone, Copy)]
pub struct PassThrough;

/// Outermost middleware: assigns the request id, puts every error into the NOWATCH shape (with
/// the path and a timestamp), keeps 5xx details out of bodies and in the log, and stamps
/// `x-request-id` on every response.
async fn request_context(
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

/// Periodic maintenance: rollout evaluation, the catalog refresh, forgetting idle limiter
/// entries and the storage sweep.
fn spawn_background_tasks(state: web::Data<AppState>) {
    let engine_state = state.clone();
    let every_tick = Duration::from_secs(state.settings.rollout.tick_interval_s);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every_tick);
        loop {
            ticker.tick().await;
            if let Err(e) = crate::services::rollout_engine::tick(&engine_state, chrono::Utc::now()).await {
                tracing::error!(error = %e, "rollout evaluation failed");
            }
        }
    });
    let catalog_state = state.clone();
    let every_catalog = Duration::from_secs(state.settings.firmware.catalog_refresh_s);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every_catalog);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            catalog_state.catalog_changed().await;
        }
    });
    let limits_state = state.clone();
    tokio::spawn(async move {
        // Without this, every device id ever seen would keep its entry until the process ends.
        let mut ticker = tokio::time::interval(limits_state.limits.sweep_every());
        ticker.tick().await;
        loop {
            ticker.tick().await;
            limits_state.limits.forget_idle();
        }
    });
    let every = Duration::from_secs(state.settings.storage.sweep_interval_s.max(1));
    let ttl = Duration::from_secs(state.settings.storage.staging_ttl_s);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            match crate::services::sweep::run(&state, ttl).await {
                Ok(report) if report == Default::default() => {}
                Ok(report) => tracing::info!(
                    staging = report.staging,
                    orphans = report.orphans,
                    multipart = report.multipart,
                    "swept storage"
                ),
                Err(e) => tracing::warn!(error = %e, "storage sweep failed"),
            }
        }
    });
}
