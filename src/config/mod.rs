//! The settings tree: `config/default.toml` (compiled in), an optional file named by
//! `NOWATCH_OTA_CONFIG`, then `NOWATCH_OTA__SECTION__KEY` environment variables and `DATABASE_URL`.
//! Loading validates everything up front and names the offending key, so a bad deployment fails at
//! start-up rather than on the first request that needs the value.

use std::collections::HashMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

mod validate;

/// The defaults, compiled in so the service does not depend on its working directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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
    pub delta: DeltaSettings,
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
    pub secret_access_key: SecretString,
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

/// The algorithms this service can be pinned to.
#[derive(Debug, Clone, Copy)]
pub struct JwtAlgorithm(pub jsonwebtoken::Algorithm);

impl JwtAlgorithm {
    pub fn parse(name: &str) -> Option<Self> {
        use jsonwebtoken::Algorithm;
        let alg = match name {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            _ => return None,
        };
        Some(Self(alg))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub algorithm: String,
    pub hs_secret: SecretString,
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
    /// Bytes per chunk of a newly published image's chunk table (`crate::chunks`).
    pub chunk_size: u32,
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

/// Delta updates: which patches are built and how (see [`crate::services::deltas`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSettings {
    pub enabled: bool,
    pub compression: DeltaCompression,
    pub min_devices: u64,
    pub max_sources: u64,
    pub max_image_bytes: u64,
    pub max_ratio: f64,
    pub concurrency: usize,
    pub plan_interval_s: u64,
    pub lease_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaCompression {
    Heatshrink,
    None,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// The bearer token a scrape must send; empty: anyone may read `/metrics`.
    pub token: SecretString,
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

    /// Whether the database is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.database.url.starts_with("postgres")
    }
}
