//! The streaming reverse proxy: requests under `proxy.prefixes` that no local route serves are
//! forwarded to `proxy.upstream`, the full NOWATCH backend, with method, path, query, headers and
//! body intact, and its answer comes back as it is (status, headers, body; redirects not
//! followed, bodies never decompressed). Both bodies stream chunk by chunk.
//!
//! The proxy never touches the database. Each actix worker owns one [`Forwarder`] and with it one
//! `awc::Client` (which is `!Send`), so upstream connections are pooled per worker.

mod answer;
mod body;
mod headers;
mod outcome;
mod path;

use std::net::IpAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::Uri;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::uri::{self, Authority, PathAndQuery, Scheme};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use awc::error::{ConnectError, SendRequestError};

use self::answer::{
    bad_gateway, classify, declared_length, gateway_timeout, pass_back, small_body, stream_back, too_large,
};
use self::body::{Progress, RequestBody};
pub use self::outcome::{Outcome, ProxyMetrics, UpstreamHealth};
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
        let timeout = self.proxy.timeout;
        let answer = match self.await_head(send, &progress).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                let (outcome, error) = classify(&e, progress.failure(), limit);
                return Err(failed(outcome, error, &e));
            }
            Err((outcome, error, detail)) => return Err(failed(outcome, error, &detail)),
        };
        self.proxy.metrics.record(tag, Outcome::Answered(answer.status()));
        let Some(length) = small_body(&answer, req.method()) else {
            return Ok(stream_back(&req, answer, timeout, tag, request_id, self.proxy.metrics.clone()));
        };
        let mut answer = answer;
        match tokio::time::timeout(timeout, answer.body().limit(length)).await {
            Ok(Ok(body)) if body.len() == length => Ok(pass_back(&req, &answer).body(body)),
            // awc ends a body at the connection's close even when it is short.
            Ok(Ok(body)) => {
                let detail = format!("body: {} of {length} bytes, then the connection closed", body.len());
                Err(failed(Outcome::BodyFailed, bad_gateway(), &detail))
            }
            Ok(Err(e)) => Err(failed(Outcome::BodyFailed, bad_gateway(), &e)),
            Err(_) => Err(failed(Outcome::BodyFailed, gateway_timeout(), &"body: idle timeout")),
        }
    }

    /// Waits for the upstream's head: `proxy.timeout_s` without progress, counted again while
    /// the request body still moves. A stall is the client's (408) if we wait on its body, else
    /// the upstream's (504).
    async fn await_head(
        &self,
        send: impl Future<Output = Result<awc::ClientResponse, SendRequestError>>,
        progress: &Progress,
    ) -> Result<Result<awc::ClientResponse, SendRequestError>, (Outcome, ApiError, &'static str)> {
        let mut send = pin!(send);
        let timeout = self.proxy.timeout;
        loop {
            match tokio::time::timeout_at(progress.last() + timeout, send.as_mut()).await {
                Ok(result) => return Ok(result),
                // Body bytes moved since the deadline was set: wait a full timeout again.
                Err(_) if progress.last() + timeout > tokio::time::Instant::now() => continue,
                Err(_) if progress.waiting_on_client() => {
                    let error = ApiError::RequestTimeout(format!(
                        "body: nothing received for {} s",
                        timeout.as_secs()
                    ));
                    return Err((Outcome::ClientFailed, error, "the client stopped sending its body"));
                }
                Err(_) => {
                    return Err((Outcome::TimedOut, gateway_timeout(), "no answer within proxy.timeout_s"));
                }
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
