//! Building and running the application: the one place that mounts routes and middleware.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::config::Settings;
use crate::error::ApiError;
use crate::middleware::{fallback, forward_proxied, request_context};
use crate::openapi::{self, ApiDoc};
use crate::proxy::{Proxy, ProxyMetrics};
use crate::routes;
use crate::state::AppState;
use crate::telemetry::RequestSpan;

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
            // Each route is registered with its OpenAPI operation: the document is what is mounted.
            let (app, api) = App::new()
                .into_utoipa_app()
                .openapi(ApiDoc::openapi())
                .app_data(app_state.clone())
                .app_data(app_state.jwt.clone())
                // One forwarder, with its own upstream connection pool, per worker.
                .app_data(web::Data::new(proxy.forwarder()))
                .configure(|cfg| mount(cfg, &app_state.settings))
                .split_for_parts();
            let api = openapi::for_settings(api, &app_state.settings);
            app.configure(|cfg| routes::method_not_allowed(cfg, &api))
                .configure(|cfg| routes::docs::mount(cfg, api))
                .configure(routes::console::mount)
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

/// Mounts every documented route and the extractor configuration that turns bad input into
/// `ApiError`s.
fn mount(cfg: &mut ServiceConfig, settings: &Settings) {
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
    .configure(routes::admin_deltas::mount)
    .configure(routes::admin_hardware::mount)
    .configure(routes::admin_rollouts::mount)
    .configure(routes::admin_timeline::mount)
    .configure(routes::metrics::mount);
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

/// Periodic maintenance: rollout evaluation, the catalog refresh, forgetting idle limiter
/// entries, the storage sweep, the chunk-table backfill, and planning and building deltas.
fn spawn_background_tasks(state: web::Data<AppState>) {
    if state.settings.delta.enabled {
        spawn_delta_tasks(&state);
    }
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
    // Chunk tables of releases published before they existed: at start-up, then with the sweep.
    let backfill_state = state.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            if let Err(e) = crate::services::chunks::backfill(&backfill_state).await {
                tracing::warn!(error = %e, "chunk table backfill failed");
            }
        }
    });
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

/// The delta planner (every `delta.plan_interval_s`, first at start-up, which also resumes what
/// a stopped instance left pending) and `delta.concurrency` builders.
fn spawn_delta_tasks(state: &web::Data<AppState>) {
    let planner = state.clone();
    let every = Duration::from_secs(state.settings.delta.plan_interval_s);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            crate::services::deltas::plan_offered(&planner).await;
        }
    });
    for _ in 0..state.settings.delta.concurrency {
        let builder = state.clone();
        tokio::spawn(async move { crate::services::deltas::builder::work(&builder).await });
    }
}
