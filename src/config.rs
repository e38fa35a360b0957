//! The settings tree: `config/default.toml` (compiled in), an optional file named by
//! `NOWATCH_OTA_CONFIG`, then `NOWATCH_OTA__SECTION__KEY` environment variables and `DATABASE_URL`.
//! Loading validates everything up front and names the offending key, so a bad deployment fails at
//! start-up rather than on the first request that needs the value.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The defaults, compiled in so the service does not depend on its working directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] =
    &["signing.retired_public_keys", "firmware.channels", "proxy.prefixes", "server.trusted_proxies"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub storage: StorageSettings,
    pub signing: SigningSettings,
    pub auth: AuthSettings,
    pub firmware: FirmwareSettings,
    pub rollout: RolloutSettings,
    pub limits: LimitSettings,
    pub proxy: ProxySettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    /// `NOWATCH_OTA_ENV=production` turns on the production guards; not a TOML key.
    #[serde(skip)]
    pub production: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub public_url: String,
    /// Addresses or CIDR networks whose forwarding headers are believed; see [`Self::trusted`].
    pub trusted_proxies: Vec<String>,
    pub max_json_bytes: usize,
    pub workers: usize,
    /// Seconds in-flight requests get to finish on shutdown (actix's `shutdown_timeout`).
    pub shutdown_grace_s: u64,
}

impl ServerSettings {
    /// `trusted_proxies` parsed: a bare address is a network of one.
    pub fn trusted(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|raw| raw.trim())
            .filter(|raw| !raw.is_empty())
            .map(|raw| {
                raw.parse::<ipnet::IpNet>()
                    .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "`server.trusted_proxies`: {raw:?} is neither an IP address nor a CIDR network"
                        ))
                    })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    /// The longest a request waits for a pooled connection before its 503.
    pub acquire_timeout_s: u64,
    pub run_migrations: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    Fs,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub backend: StorageBackend,
    pub staging_ttl_s: u64,
    pub sweep_interval_s: u64,
    pub fs: FsSettings,
    pub s3: S3Settings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsSettings {
    pub root: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    /// The endpoint presigned download URLs name (`download_mode = "redirect"`), as clients
    /// reach the store; empty: `endpoint`.
    pub public_endpoint: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub part_size_bytes: usize,
    /// At most [`MAX_PRESIGN_TTL_S`]: a URL handed out before a revoke works until it expires.
    pub presign_ttl_s: u64,
}

/// The longest a presigned download URL may live, in seconds (15 minutes). A URL is only needed
/// from the 302 to the first byte (a download in flight is not cut when it expires, and a
/// resume asks this service again), and every second of it is a second a revoked image stays
/// downloadable.
pub const MAX_PRESIGN_TTL_S: u64 = 900;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    pub key_file: String,
    pub retired_public_keys: Vec<String>,
    pub manifest_ttl_s: u64,
    pub require_release_signature: bool,
    pub release_keys_dir: PathBuf,
    /// Directory of the signed root documents `1.root.json`, `2.root.json`, ...; empty: the
    /// built-in DEV ONLY chain (`keys/root/`), refused in production.
    pub root_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub algorithm: String,
    pub hs_secret: String,
    pub public_key_file: String,
    pub issuer: String,
    pub audience: String,
    pub leeway_s: u64,
    pub admin_flag_claim: String,
    pub roles_claim: String,
    pub public_downloads: bool,
    /// A claim naming the devices a token may report for (a string or a list); empty: a device
    /// belongs to the account that first reports it.
    pub device_claim: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadMode {
    Stream,
    Redirect,
    /// An nginx in front serves the file after this service's checks (`X-Accel-Redirect`).
    Accel,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareSettings {
    pub channels: Vec<String>,
    /// Channel -> the role a caller needs to see it (`""`: none); see `services::channel_access`.
    pub channel_roles: std::collections::BTreeMap<String, String>,
    pub max_upload_bytes: u64,
    /// The longest an upload body may stall before its 408.
    pub upload_idle_timeout_s: u64,
    /// The longest a client may leave a response unread before its connection is cut.
    pub download_idle_timeout_s: u64,
    pub download_mode: DownloadMode,
    /// The internal nginx location that maps to `storage.fs.root` (`download_mode = "accel"`).
    pub accel_location: String,
    pub poll_after_s: u64,
    pub catalog_refresh_s: u64,
    /// A device that checks again sooner is answered 429 with `Retry-After`; 0: no limit.
    pub min_check_interval_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSettings {
    pub max_failure_rate: f64,
    pub min_reports: u64,
    pub tick_interval_s: u64,
    /// Devices of one account whose outcomes count towards one rollout's health.
    pub max_devices_per_owner: u32,
    /// `failed` reports of one device for one release after which it is no longer offered.
    pub max_failures_per_device: u32,
}

/// Per-instance, in-memory request limits; 0 turns one off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub reports_per_account_per_minute: u32,
    pub reports_per_device_per_minute: u32,
    pub new_devices_per_account_per_day: u32,
}

/// The reverse proxy to the full NOWATCH backend (see [`crate::proxy`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    /// Empty, or an absolute http(s) URL whose path is prepended to forwarded paths.
    pub upstream: String,
    pub prefixes: Vec<String>,
    pub timeout_s: u64,
    pub connect_timeout_s: u64,
    pub max_body_bytes: u64,
    pub max_connections: usize,
    pub keep_alive_s: u64,
}

/// An absolute http(s) URL with a host and no credentials, query or fragment.
fn is_plain_http_url(value: &str) -> bool {
    url::Url::parse(value).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
    })
}

/// Paths served here, which no proxy prefix may overlap.
const LOCAL_ROOTS: &[&str] = &["/v1/firmware", "/v1/admin", "/healthz", "/readyz"];

impl ProxySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: String| Err(ConfigError(format!("`proxy.{key}`: {why}")));
        if !self.upstream.is_empty() {
            let url = match url::Url::parse(&self.upstream) {
                Ok(url) => url,
                Err(e) => return fail("upstream", format!("must be empty or an absolute http(s) URL: {e}")),
            };
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return fail("upstream", "must be empty or an absolute http(s) URL".into());
            }
            if url.query().is_some()
                || url.fragment().is_some()
                || !url.username().is_empty()
                || url.password().is_some()
            {
                return fail("upstream", "must not carry credentials, a query or a fragment".into());
            }
        }
        if self.prefixes.is_empty() {
            return fail("prefixes", "must list at least one prefix".into());
        }
        for prefix in &self.prefixes {
            if !prefix.starts_with('/') {
                return fail("prefixes", format!("{prefix:?} must start with /"));
            }
            if crate::proxy::unsafe_path(prefix).is_some() || prefix.contains(['?', '#', '%']) {
                return fail("prefixes", format!("{prefix:?} must be a plain path"));
            }
            let trimmed = prefix.trim_end_matches('/');
            let overlaps = |a: &str, b: &str| a == b || a.is_empty() || b.starts_with(&format!("{a}/"));
            if let Some(local) = LOCAL_ROOTS.iter().find(|l| overlaps(trimmed, l) || overlaps(l, trimmed)) {
                return fail("prefixes", format!("{prefix:?} overlaps {local}, which is served here"));
            }
        }
        if self.timeout_s == 0 {
            return fail("timeout_s", "must be at least 1".into());
        }
        if self.connect_timeout_s == 0 {
            return fail("connect_timeout_s", "must be at least 1".into());
        }
        if self.max_body_bytes == 0 {
            return fail("max_body_bytes", "must be above 0".into());
        }
        if self.max_connections == 0 {
            return fail("max_connections", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Who may read `/metrics`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// The bearer token a scrape must send; empty: anyone may read `/metrics`. A secret.
    pub token: String,
}

impl std::fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("MetricsSettings").field("token", &token).finish()
    }
}

/// The shortest `metrics.token` accepted: a token guessed by trying is a token anyone has.
const MIN_METRICS_TOKEN_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// A configuration that cannot run; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// `firmware.channel_roles`' entry in `config/default.toml`.
const DEFAULT_CHANNEL_ROLE: (&str, &str) = ("internal", "tester");

/// The JWT secret shipped in `config/default.toml`; refused in production.
pub const DEV_HS_SECRET: &str = "nowatch-ota-dev-jwt-secret-DO-NOT-USE-IN-PRODUCTION";

impl Settings {
    /// Loads from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Loads from the given environment, so tests can build settings without touching the
    /// process's own.
    pub fn load_from(env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
        if let Some(path) = env.get("NOWATCH_OTA_CONFIG").filter(|p| !p.is_empty()) {
            if !std::path::Path::new(path).is_file() {
                return Err(ConfigError(format!(
                    "NOWATCH_OTA_CONFIG names {path}, which is not a readable file"
                )));
            }
            builder = builder.add_source(config::File::new(path, config::FileFormat::Toml));
        }
        let mut environment = config::Environment::with_prefix("NOWATCH_OTA")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",");
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        builder = builder.add_source(environment.source(Some(env.clone().into_iter().collect())));
        if let Some(url) = env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
            builder =
                builder.set_override("database.url", url.as_str()).map_err(|e| ConfigError(e.to_string()))?;
        }
        let mut settings: Settings =
            builder.build().and_then(|c| c.try_deserialize()).map_err(|e| ConfigError(e.to_string()))?;
        settings.production =
            env.get("NOWATCH_OTA_ENV").is_some_and(|v| v.eq_ignore_ascii_case("production"));
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: combinations, ranges and the production guards.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("`{key}`: {why}")));
        let db = &self.database.url;
        if !(db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return fail("database.url", "must start with sqlite:, postgres:// or postgresql://");
        }
        if self.database.max_connections == 0 {
            return fail("database.max_connections", "must be at least 1");
        }
        if self.database.acquire_timeout_s == 0 {
            return fail("database.acquire_timeout_s", "must be at least 1");
        }
        if self.storage.backend == StorageBackend::S3 {
            if self.storage.s3.bucket.is_empty() {
                return fail("storage.s3.bucket", "required when storage.backend = \"s3\"");
            }
            if self.storage.s3.access_key_id.is_empty() != self.storage.s3.secret_access_key.is_empty() {
                return fail("storage.s3.secret_access_key", "set both static credentials or neither");
            }
            // Credentials in the URL would be quoted by every error that names the endpoint.
            let endpoint = &self.storage.s3.endpoint;
            if !endpoint.is_empty() {
                match url::Url::parse(endpoint) {
                    Ok(url) if url.username().is_empty() && url.password().is_none() => {}
                    Ok(_) => {
                        return fail(
                            "storage.s3.endpoint",
                            "must not carry credentials; set access_key_id and secret_access_key",
                        );
                    }
                    Err(_) => return fail("storage.s3.endpoint", "must be empty or an absolute URL"),
                }
            }
        }
        if !(5 << 20..=5 << 30).contains(&self.storage.s3.part_size_bytes) {
            return fail("storage.s3.part_size_bytes", "must be between 5 MiB and 5 GiB");
        }
        if !(1..=MAX_PRESIGN_TTL_S).contains(&self.storage.s3.presign_ttl_s) {
            return fail(
                "storage.s3.presign_ttl_s",
                &format!("must be between 1 and {MAX_PRESIGN_TTL_S} seconds (15 minutes)"),
            );
        }
        let public = &self.storage.s3.public_endpoint;
        if !public.is_empty() && !is_plain_http_url(public) {
            return fail(
                "storage.s3.public_endpoint",
                "must be empty or an absolute http(s) URL without credentials, a query or a fragment",
            );
        }
        if self.signing.manifest_ttl_s < 60 {
            return fail("signing.manifest_ttl_s", "must be at least 60 seconds");
        }
        if crate::auth::JwtAlgorithm::parse(&self.auth.algorithm).is_none() {
            return fail(
                "auth.algorithm",
                "must be one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, EdDSA",
            );
        }
        let hs = self.auth.algorithm.starts_with("HS");
        if hs && self.auth.hs_secret.len() < 32 {
            return fail("auth.hs_secret", "must be at least 32 bytes");
        }
        if !hs && self.auth.public_key_file.is_empty() {
            return fail("auth.public_key_file", "required for a non-HS algorithm");
        }
        if self.firmware.channels.is_empty() || self.firmware.channels.len() > 64 {
            return fail("firmware.channels", "must list between 1 and 64 channels");
        }
        for (i, channel) in self.firmware.channels.iter().enumerate() {
            if crate::domain::Channel::parse(channel).is_err() {
                return fail("firmware.channels", &format!("{channel:?} is not a valid channel name"));
            }
            if self.firmware.channels[..i].contains(channel) {
                return fail("firmware.channels", &format!("{channel:?} is listed twice"));
            }
        }
        // A typo must not leave a channel open; the built-in `internal` entry only applies where
        // there is such a channel.
        let unknown = self.firmware.channel_roles.iter().find(|&(channel, role)| {
            !self.firmware.channels.contains(channel)
                && (channel.as_str(), role.as_str()) != DEFAULT_CHANNEL_ROLE
        });
        if let Some((channel, _)) = unknown {
            return fail("firmware.channel_roles", &format!("{channel:?} is not one of firmware.channels"));
        }
        if self.firmware.max_upload_bytes == 0 {
            return fail("firmware.max_upload_bytes", "must be above 0");
        }
        if self.firmware.upload_idle_timeout_s == 0 {
            return fail("firmware.upload_idle_timeout_s", "must be at least 1");
        }
        // TCP_USER_TIMEOUT is in milliseconds in a C unsigned int.
        if !(1..=86_400).contains(&self.firmware.download_idle_timeout_s) {
            return fail("firmware.download_idle_timeout_s", "must be between 1 and 86400");
        }
        if self.firmware.download_mode == DownloadMode::Redirect && self.storage.backend != StorageBackend::S3
        {
            return fail("firmware.download_mode", "\"redirect\" needs storage.backend = \"s3\"");
        }
        if self.firmware.download_mode == DownloadMode::Accel && self.storage.backend != StorageBackend::Fs {
            return fail("firmware.download_mode", "\"accel\" needs storage.backend = \"fs\"");
        }
        let location = &self.firmware.accel_location;
        if !(location.starts_with('/') && location.ends_with('/'))
            || location.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return fail("firmware.accel_location", "must be a path that starts and ends with /");
        }
        if !(0.0..=1.0).contains(&self.rollout.max_failure_rate) {
            return fail("rollout.max_failure_rate", "must be between 0 and 1");
        }
        if self.firmware.catalog_refresh_s == 0 {
            return fail("firmware.catalog_refresh_s", "must be at least 1");
        }
        if self.rollout.tick_interval_s == 0 {
            return fail("rollout.tick_interval_s", "must be at least 1");
        }
        if self.rollout.max_devices_per_owner == 0 {
            // 0 would count no outcome at all: no rollout could ever halt.
            return fail("rollout.max_devices_per_owner", "must be at least 1");
        }
        if self.storage.backend == StorageBackend::S3 && self.firmware.max_upload_bytes > 5 << 30 {
            return fail(
                "firmware.max_upload_bytes",
                "must be at most 5 GiB with the s3 backend (CopyObject limit)",
            );
        }
        if !self.server.public_url.is_empty() && url::Url::parse(&self.server.public_url).is_err() {
            return fail("server.public_url", "must be an absolute URL");
        }
        self.server.trusted()?;
        self.proxy.validate()?;
        let token = &self.metrics.token;
        if !token.is_empty()
            && (token.len() < MIN_METRICS_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return fail(
                "metrics.token",
                "must be empty or at least 16 visible ASCII characters (no spaces), as a bearer token is sent",
            );
        }
        if self.production {
            if self.signing.key_file.is_empty() {
                return fail(
                    "signing.key_file",
                    "NOWATCH_OTA_ENV=production refuses the built-in dev signing key; set a key file",
                );
            }
            if hs && self.auth.hs_secret == DEV_HS_SECRET {
                return fail("auth.hs_secret", "NOWATCH_OTA_ENV=production refuses the dev JWT secret");
            }
            if token.is_empty() {
                return fail(
                    "metrics.token",
                    "NOWATCH_OTA_ENV=production refuses metrics anyone can read; set a token for the scraper",
                );
            }
            if self.server.public_url.is_empty() {
                return fail(
                    "server.public_url",
                    "NOWATCH_OTA_ENV=production needs the URL devices reach this service at (download links)",
                );
            }
        }
        Ok(())
    }

    /// Whether the database is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.database.url.starts_with("postgres")
    }
}
