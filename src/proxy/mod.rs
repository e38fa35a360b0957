//! The streaming reverse proxy: requests under `proxy.prefixes` that no local route serves are
//! forwarded to `proxy.upstream`, the full NOWATCH backend, with method, path, query, headers and
//! body intact, and its answer comes back as it is (status, headers, body; redirects not
//! followed, bodies never decompressed). Both bodies stream chunk by chunk.
//!
//! The proxy never touches the database. Each actix worker owns one [`Forwarder`] and with it one
//! `awc::Client` (which is `!Send`), so upstream connections are pooled per worker.

mod body;
mod headers;
mod path;

use std::net::IpAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::uri::{self, Authority, PathAndQuery, Scheme};
use actix_web::http::{StatusCode, Uri};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use awc::error::{ConnectError, SendRequestError};

use self::body::{BodyFailure, Progress, RequestBody, ResponseBody};
use self::path::Prefixes;
use crate::config::ProxySettings;
use crate::error::ApiError;
use crate::telemetry::{REQUEST_ID_HEADER, RequestId};

/// Request headers this hop replaces rather than passes on (besides the hop-by-hop ones); see
/// [`Forwarder::upstream_request`] for what a trusted proxy's forwarding headers become.
const REPLACED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
    "x-request-id",
];

/// The methods forwarded; `CONNECT` (a tunnel), `TRACE` (echoes cookies back) and any other
/// are 405 here and never reach the backend.
const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

fn forwarded_method(method: &actix_web::http::Method) -> bool {
    use actix_web::http::Method;
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS]
        .contains(method)
}

/// What became of a proxied request, for the metrics hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status (its body may still be streaming).
    Answered(StatusCode),
    /// No `proxy.upstream` is configured: 503.
    NoUpstream,
    /// The request body was over `proxy.max_body_bytes`: 413.
    TooLarge,
    /// The client's request body broke off or stalled: 400 or 408.
    ClientFailed,
    /// The upstream could not be reached or answered garbage: 502.
    Unreachable,
    /// The upstream did not answer within the timeout: 504.
    TimedOut,
    /// The upstream's response body broke off or stalled after the head was sent.
    BodyFailed,
}

/// What a readiness probe learnt about the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamHealth {
    /// It answered (with any status).
    Ok,
    /// The connection failed: refused, reset, TLS, or not HTTP.
    Unreachable,
    /// No answer within the probe's time limit: down behind a firewall, or hanging.
    Timeout,
}

impl UpstreamHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
        }
    }
}

/// The proxy's share of `/metrics`: requests by tag (the prefix's last segment: `measurement`,
/// `auth`, ...) and status, and upstream failures by tag and kind.
#[derive(Clone)]
pub struct ProxyMetrics {
    requests: prometheus::IntCounterVec,
    upstream_errors: prometheus::IntCounterVec,
}

impl ProxyMetrics {
    pub fn new(metrics: &crate::metrics::Metrics) -> Self {
        Self {
            requests: metrics.proxy_requests.clone(),
            upstream_errors: metrics.proxy_upstream_errors.clone(),
        }
    }

    /// Called once for every proxied request, and again if its response body fails.
    pub fn record(&self, tag: &str, outcome: Outcome) {
        let status = match outcome {
            Outcome::Answered(status) => status.as_u16(),
            Outcome::NoUpstream => 503,
            Outcome::TooLarge => 413,
            Outcome::ClientFailed => 400,
            Outcome::Unreachable => 502,
            Outcome::TimedOut => 504,
            Outcome::BodyFailed => {
                self.upstream_errors.with_label_values(&[tag, "body_failed"]).inc();
                return;
            }
        };
        match outcome {
            Outcome::Unreachable => self.upstream_errors.with_label_values(&[tag, "unreachable"]).inc(),
            Outcome::TimedOut => self.upstream_errors.with_label_values(&[tag, "timeout"]).inc(),
            _ => {}
        }
        self.requests.with_label_values(&[tag, &status.to_string()]).inc();
    }
}

/// The proxy's settings, resolved once and shared by every worker.
pub struct Proxy {
    upstream: Option<Upstream>,
    prefixes: Prefixes,
    timeout: Duration,
    connect_timeout: Duration,
    keep_alive: Duration,
    max_body_bytes: u64,
    max_connections: usize,
    tls: Arc<rustls::ClientConfig>,
    metrics: ProxyMetrics,
    /// `server.trusted_proxies`: peers whose forwarding headers are passed on.
    trusted: Vec<ipnet::IpNet>,
}

/// `proxy.upstream`, parsed once: each request's target is put together from these parts and
/// its own path, without formatting and parsing a URL per request.
struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// No trailing slash; empty for an upstream at its root.
    base_path: String,
    /// The `Host` of every upstream request, as awc would write it (no port 80 or 443), made
    /// once: awc formats it for each request that has none.
    host: HeaderValue,
}

impl Upstream {
    fn parse(raw: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("`proxy.upstream`: {e}"))?;
        let origin: Uri =
            url[..url::Position::BeforePath].parse().map_err(|e| anyhow::anyhow!("`proxy.upstream`: {e}"))?;
        let parts = origin.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            anyhow::bail!("`proxy.upstream`: needs a scheme and a host");
        };
        let host = match authority.port_u16() {
            None | Some(80 | 443) => authority.host().to_owned(),
            Some(port) => format!("{}:{port}", authority.host()),
        };
        let host = HeaderValue::try_from(host).map_err(|e| anyhow::anyhow!("`proxy.upstream`: host: {e}"))?;
        Ok(Self { scheme, authority, base_path: url.path().trim_end_matches('/').to_owned(), host })
    }

    /// The upstream URL of a request's path and query (origin-form, as the client sent it).
    fn target(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, ApiError> {
        let invalid = || ApiError::field("path", "not a valid request target");
        let path_and_query = match (self.base_path.as_str(), path_and_query) {
            ("", Some(pq)) => pq.clone(), // shares the request's bytes: no copy
            (base, pq) => PathAndQuery::try_from(format!("{base}{}", pq.map_or("/", PathAndQuery::as_str)))
                .map_err(|_| invalid())?,
        };
        let mut parts = uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|_| invalid())
    }

    /// `scheme://authority/base/`: what the readiness probe asks for.
    fn root(&self) -> String {
        format!("{}://{}{}/", self.scheme, self.authority, self.base_path)
    }
}

impl Proxy {
    /// Resolves validated settings; fails only if TLS cannot be set up.
    pub fn from_settings(
        settings: &ProxySettings,
        trusted: Vec<ipnet::IpNet>,
        metrics: ProxyMetrics,
    ) -> anyhow::Result<Arc<Self>> {
        let upstream = match settings.upstream.as_str() {
            "" => None,
            raw => Some(Upstream::parse(raw)?),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("`proxy.upstream`: TLS set-up failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // HTTP/1.1 only: awc's HTTP/2 flow-control windows are too small for large bodies.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Self {
            upstream,
            prefixes: Prefixes::new(&settings.prefixes),
            timeout: Duration::from_secs(settings.timeout_s),
            connect_timeout: Duration::from_secs(settings.connect_timeout_s),
            keep_alive: Duration::from_secs(settings.keep_alive_s),
            max_body_bytes: settings.max_body_bytes,
            max_connections: settings.max_connections,
            tls: Arc::new(tls),
            metrics,
            trusted,
        }))
    }

    /// The forwarder of one worker, with its own connection pool.
    pub fn forwarder(self: &Arc<Self>) -> Forwarder {
        let connector = awc::Connector::new()
            .rustls_0_23(self.tls.clone())
            .limit(self.max_connections)
            .timeout(self.connect_timeout)
            .handshake_timeout(self.connect_timeout)
            .conn_keep_alive(self.keep_alive);
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .disable_timeout() // the idle timeout below covers the whole exchange
            .no_default_headers()
            .finish();
        Forwarder { proxy: self.clone(), client }
    }
}

/// Marks a request whose response must reach the client untouched even if it is an error: the
/// upstream answered it (set on the request, whose extensions exist already, not the response).
#[derive(Debug, Clone, Copy)]
pub struct PassThrough;

/// One worker's proxy: the shared settings and that worker's pooled client.
pub struct Forwarder {
    proxy: Arc<Proxy>,
    client: awc::Client,
}

impl Forwarder {
    /// The tag of the prefix a (safe) path falls under, if it is proxied.
    pub fn tag_of(&self, path: &str) -> Option<&str> {
        self.proxy.prefixes.tag_of(path)
    }

    /// `HEAD` of the upstream's base path, on this worker's pool, for at most `within`: any
    /// answer, whatever its status, means the backend is there. `None` without an upstream.
    pub async fn probe(&self, within: Duration) -> Option<UpstreamHealth> {
        let upstream = self.proxy.upstream.as_ref()?;
        let request = self.client.head(upstream.root()).no_decompress();
        Some(match tokio::time::timeout(within, request.send()).await {
            Ok(Ok(_)) => UpstreamHealth::Ok,
            Ok(Err(SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout)))
            | Err(_) => UpstreamHealth::Timeout,
            Ok(Err(_)) => UpstreamHealth::Unreachable,
        })
    }

    /// Forwards the request and streams the upstream's answer back, marked [`PassThrough`] so
    /// its errors keep their own bodies. The caller has checked the path with
    /// [`nowatch_ota_core::request_path::unsafe_path`].
    pub async fn forward(
        &self,
        req: HttpRequest,
        payload: web::Payload,
        tag: &str,
    ) -> Result<HttpResponse, ApiError> {
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        let failed = |outcome: Outcome, error: ApiError, detail: &dyn std::fmt::Display| {
            let detail = detail.to_string();
            tracing::warn!(request_id = %request_id, tag, ?outcome, error = %crate::telemetry::escaped(&detail), "proxy: request failed");
            self.proxy.metrics.record(tag, outcome);
            error
        };
        if !forwarded_method(req.method()) {
            let message =
                format!("method: {} is not forwarded; use one of {FORWARDED_METHODS}", req.method());
            return Err(ApiError::MethodNotAllowed { message, allow: FORWARDED_METHODS });
        }
        let Some(upstream) = &self.proxy.upstream else {
            let error = ApiError::ServiceUnavailable("this part of the API is not available here".into());
            return Err(failed(Outcome::NoUpstream, error, &"`proxy.upstream` is empty"));
        };
        let limit = self.proxy.max_body_bytes;
        let declared = declared_length(&req)?;
        if declared.is_some_and(|len| len > limit) {
            return Err(failed(Outcome::TooLarge, too_large(limit), &"Content-Length over the limit"));
        }
        let request = self.upstream_request(&req, upstream, &request_id)?;

        let progress = Rc::new(Progress::new());
        let send = match declared {
            Some(len) => {
                request.send_body(SizedStream::new(len, RequestBody::new(payload, limit, progress.clone())))
            }
            None if req.headers().contains_key(header::TRANSFER_ENCODING) => {
                request.send_body(BodyStream::new(RequestBody::new(payload, limit, progress.clone())))
            }
            None => request.send(),
        };
        let mut send = pin!(send);
        let timeout = self.proxy.timeout;
        let sent = loop {
            match tokio::time::timeout_at(progress.last() + timeout, send.as_mut()).await {
                Ok(result) => break result,
                // Body bytes moved since the deadline was set: wait a full timeout again.
                Err(_) if progress.last() + timeout > tokio::time::Instant::now() => continue,
                Err(_) if progress.waiting_on_client() => {
                    let error = ApiError::RequestTimeout(format!(
                        "body: nothing received for {} s",
                        timeout.as_secs()
                    ));
                    return Err(failed(Outcome::ClientFailed, error, &"the client stopped sending its body"));
                }
                Err(_) => {
                    let detail = "no answer within proxy.timeout_s";
                    return Err(failed(Outcome::TimedOut, gateway_timeout(), &detail));
                }
            }
        };
        match sent {
            Ok(mut answer) => {
                self.proxy.metrics.record(tag, Outcome::Answered(answer.status()));
                if let Some(length) = small_body(&answer, req.method()) {
                    return match tokio::time::timeout(timeout, answer.body().limit(length)).await {
                        Ok(Ok(body)) if body.len() == length => Ok(pass_back(&req, &answer).body(body)),
                        // awc ends a body at the connection's close even when it is short.
                        Ok(Ok(body)) => {
                            let detail =
                                format!("body: {} of {length} bytes, then the connection closed", body.len());
                            Err(failed(Outcome::BodyFailed, bad_gateway(), &detail))
                        }
                        Ok(Err(e)) => Err(failed(Outcome::BodyFailed, bad_gateway(), &e)),
                        Err(_) => Err(failed(Outcome::BodyFailed, gateway_timeout(), &"body: idle timeout")),
                    };
                }
                Ok(stream_back(&req, answer, timeout, tag, request_id, self.proxy.metrics.clone()))
            }
            Err(e) => {
                let (outcome, error) = classify(&e, progress.failure(), limit);
                Err(failed(outcome, error, &e))
            }
        }
    }

    /// The upstream request: same method, base path + path + query, end-to-end headers, plus the
    /// forwarding headers and our request id.
    fn upstream_request(
        &self,
        req: &HttpRequest,
        upstream: &Upstream,
        request_id: &str,
    ) -> Result<awc::ClientRequest, ApiError> {
        let target = upstream.target(req.uri().path_and_query())?;
        let mut request = self.client.request(req.method().clone(), target).no_decompress();
        let outgoing = request.headers_mut();
        for (name, value) in headers::end_to_end(req.headers(), REPLACED_REQUEST_HEADERS) {
            outgoing.append(name.clone(), value.clone());
        }
        outgoing.insert(header::HOST, upstream.host.clone());
        // Scheme, host and address as the client's side saw them: a trusted load balancer
        // before us says so, anyone else's say is replaced by what this connection shows.
        // `Forwarded` and `X-Real-IP` are always this hop's own, never a client's.
        let peer = req.peer_addr().map(|a| a.ip());
        let trusted_ip = |ip: IpAddr| self.proxy.trusted.iter().any(|net| net.contains(&ip));
        let trusted = peer.is_some_and(trusted_ip);
        let (scheme, host) = headers::client_scheme_and_host(req, trusted).map_err(ApiError::bad_request)?;
        let forwarded_for = headers::forwarded_for(req.headers(), peer, trusted);
        let client = forwarded_for.as_deref().and_then(|chain| headers::client_ip(chain, trusted_ip));
        let forwarded = headers::forwarded_element(client, scheme, host);
        let added = [
            (headers::X_FORWARDED_FOR, forwarded_for.as_deref()),
            (headers::X_FORWARDED_PROTO, Some(scheme)),
            (headers::X_FORWARDED_HOST, Some(host)),
            (header::FORWARDED, Some(forwarded.as_str())),
            (headers::X_REAL_IP, client),
            (REQUEST_ID_HEADER, Some(request_id).filter(|id| !id.is_empty())),
        ];
        for (name, value) in added {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                outgoing.insert(name, value);
            }
        }
        Ok(request)
    }
}

/// Upstream bodies up to this size are read whole before the answer starts (as nginx's
/// `proxy_buffering` does): the head and body leave in one write without a stream and its idle
/// timer per request, and a body that breaks off is still a clean 502. Larger ones stream.
const BUFFERED_BODY_BYTES: u64 = 64 * 1024;

/// The announced length of a body small enough to read whole; `None` for anything that must
/// stream, and for HEAD, whose answer announces a length it does not send.
fn small_body(answer: &awc::ClientResponse, method: &actix_web::http::Method) -> Option<usize> {
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
fn pass_back(req: &HttpRequest, answer: &awc::ClientResponse) -> actix_web::HttpResponseBuilder {
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
fn stream_back(
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
fn classify(error: &SendRequestError, body: Option<BodyFailure>, limit: u64) -> (Outcome, ApiError) {
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
fn declared_length(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()))
        .map(|parsed| parsed.ok_or_else(|| ApiError::field("Content-Length", "not a number")))
        .transpose()
}

fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!("body: larger than the limit of {limit} bytes"))
}

fn bad_gateway() -> ApiError {
    ApiError::BadGateway("the backend's answer broke off".into())
}

fn gateway_timeout() -> ApiError {
    ApiError::GatewayTimeout("the backend did not answer in time".into())
}
