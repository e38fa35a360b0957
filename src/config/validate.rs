//! What serde cannot check: ranges, combinations and the production guards, one function per
//! section. Every failure names its key.

use secrecy::ExposeSecret;

use super::{
    ConfigError, DEFAULT_CHANNEL_ROLE, DEV_HS_SECRET, DownloadMode, JwtAlgorithm, MAX_PRESIGN_TTL_S,
    MIN_METRICS_TOKEN_BYTES, ProxySettings, Settings, StorageBackend,
};

type Checked = Result<(), ConfigError>;

fn fail(key: &str, why: impl std::fmt::Display) -> Checked {
    Err(ConfigError(format!("`{key}`: {why}")))
}

impl Settings {
    /// Checks every section, then what production refuses.
    pub fn validate(&self) -> Checked {
        self.check_database()?;
        self.check_storage()?;
        self.check_auth()?;
        self.check_channels()?;
        self.check_firmware()?;
        self.check_rollout()?;
        self.check_server()?;
        self.proxy.validate()?;
        self.check_delta()?;
        self.check_metrics()?;
        if self.production {
            self.check_production()?;
        }
        Ok(())
    }

    fn check_database(&self) -> Checked {
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
        Ok(())
    }

    fn check_storage(&self) -> Checked {
        let s3 = &self.storage.s3;
        if self.storage.backend == StorageBackend::S3 {
            if s3.bucket.is_empty() {
                return fail("storage.s3.bucket", "required when storage.backend = \"s3\"");
            }
            if s3.access_key_id.is_empty() != s3.secret_access_key.expose_secret().is_empty() {
                return fail("storage.s3.secret_access_key", "set both static credentials or neither");
            }
            // Credentials in the URL would be quoted by every error that names the endpoint.
            if !s3.endpoint.is_empty() {
                match url::Url::parse(&s3.endpoint) {
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
        if !(5 << 20..=5 << 30).contains(&s3.part_size_bytes) {
            return fail("storage.s3.part_size_bytes", "must be between 5 MiB and 5 GiB");
        }
        if !(1..=MAX_PRESIGN_TTL_S).contains(&s3.presign_ttl_s) {
            let why = format!("must be between 1 and {MAX_PRESIGN_TTL_S} seconds (15 minutes)");
            return fail("storage.s3.presign_ttl_s", why);
        }
        if !s3.public_endpoint.is_empty() && !is_plain_http_url(&s3.public_endpoint) {
            return fail(
                "storage.s3.public_endpoint",
                "must be empty or an absolute http(s) URL without credentials, a query or a fragment",
            );
        }
        Ok(())
    }

    fn check_auth(&self) -> Checked {
        if self.signing.manifest_ttl_s < 60 {
            return fail("signing.manifest_ttl_s", "must be at least 60 seconds");
        }
        if JwtAlgorithm::parse(&self.auth.algorithm).is_none() {
            return fail(
                "auth.algorithm",
                "must be one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, EdDSA",
            );
        }
        let hs = self.auth.algorithm.starts_with("HS");
        if hs && self.auth.hs_secret.expose_secret().len() < 32 {
            return fail("auth.hs_secret", "must be at least 32 bytes");
        }
        if !hs && self.auth.public_key_file.is_empty() {
            return fail("auth.public_key_file", "required for a non-HS algorithm");
        }
        Ok(())
    }

    fn check_channels(&self) -> Checked {
        let channels = &self.firmware.channels;
        if channels.is_empty() || channels.len() > 64 {
            return fail("firmware.channels", "must list between 1 and 64 channels");
        }
        for (i, channel) in channels.iter().enumerate() {
            if crate::domain::Channel::parse(channel).is_err() {
                return fail("firmware.channels", format!("{channel:?} is not a valid channel name"));
            }
            if channels[..i].contains(channel) {
                return fail("firmware.channels", format!("{channel:?} is listed twice"));
            }
        }
        // A typo must not leave a channel open; the built-in `internal` entry only applies where
        // there is such a channel.
        let unknown = self.firmware.channel_roles.iter().find(|&(channel, role)| {
            !channels.contains(channel) && (channel.as_str(), role.as_str()) != DEFAULT_CHANNEL_ROLE
        });
        if let Some((channel, _)) = unknown {
            return fail("firmware.channel_roles", format!("{channel:?} is not one of firmware.channels"));
        }
        Ok(())
    }

    fn check_firmware(&self) -> Checked {
        let firmware = &self.firmware;
        if firmware.max_upload_bytes == 0 {
            return fail("firmware.max_upload_bytes", "must be above 0");
        }
        if self.storage.backend == StorageBackend::S3 && firmware.max_upload_bytes > 5 << 30 {
            return fail(
                "firmware.max_upload_bytes",
                "must be at most 5 GiB with the s3 backend (CopyObject limit)",
            );
        }
        if firmware.upload_idle_timeout_s == 0 {
            return fail("firmware.upload_idle_timeout_s", "must be at least 1");
        }
        // TCP_USER_TIMEOUT is in milliseconds in a C unsigned int.
        if !(1..=86_400).contains(&firmware.download_idle_timeout_s) {
            return fail("firmware.download_idle_timeout_s", "must be between 1 and 86400");
        }
        if firmware.download_mode == DownloadMode::Redirect && self.storage.backend != StorageBackend::S3 {
            return fail("firmware.download_mode", "\"redirect\" needs storage.backend = \"s3\"");
        }
        if firmware.download_mode == DownloadMode::Accel && self.storage.backend != StorageBackend::Fs {
            return fail("firmware.download_mode", "\"accel\" needs storage.backend = \"fs\"");
        }
        let location = &firmware.accel_location;
        if !(location.starts_with('/') && location.ends_with('/'))
            || location.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return fail("firmware.accel_location", "must be a path that starts and ends with /");
        }
        if firmware.catalog_refresh_s == 0 {
            return fail("firmware.catalog_refresh_s", "must be at least 1");
        }
        if !crate::chunks::valid_chunk_size(firmware.chunk_size) {
            return fail("firmware.chunk_size", "must be a power of two from 512 to 65536");
        }
        Ok(())
    }

    fn check_rollout(&self) -> Checked {
        if !(0.0..=1.0).contains(&self.rollout.max_failure_rate) {
            return fail("rollout.max_failure_rate", "must be between 0 and 1");
        }
        if self.rollout.tick_interval_s == 0 {
            return fail("rollout.tick_interval_s", "must be at least 1");
        }
        if self.rollout.max_devices_per_owner == 0 {
            // 0 would count no outcome at all: no rollout could ever halt.
            return fail("rollout.max_devices_per_owner", "must be at least 1");
        }
        Ok(())
    }

    fn check_delta(&self) -> Checked {
        let delta = &self.delta;
        if !(delta.max_ratio > 0.0 && delta.max_ratio <= 1.0) {
            return fail("delta.max_ratio", "must be above 0 and at most 1");
        }
        for (key, value) in [
            ("delta.plan_interval_s", delta.plan_interval_s),
            ("delta.lease_s", delta.lease_s),
            ("delta.max_sources", delta.max_sources),
            ("delta.min_devices", delta.min_devices),
        ] {
            if value == 0 {
                return fail(key, "must be at least 1");
            }
        }
        // The suffix array holds 32-bit positions.
        if delta.max_image_bytes > i32::MAX as u64 / 2 {
            return fail("delta.max_image_bytes", "must be at most 1 GiB");
        }
        Ok(())
    }

    fn check_server(&self) -> Checked {
        if !self.server.public_url.is_empty() && url::Url::parse(&self.server.public_url).is_err() {
            return fail("server.public_url", "must be an absolute URL");
        }
        self.server.trusted()?;
        Ok(())
    }

    fn check_metrics(&self) -> Checked {
        let token = self.metrics.token.expose_secret();
        if !token.is_empty()
            && (token.len() < MIN_METRICS_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return fail(
                "metrics.token",
                "must be empty or at least 16 visible ASCII characters (no spaces), as a bearer token is sent",
            );
        }
        Ok(())
    }

    /// `NOWATCH_OTA_ENV=production`: no built-in dev secret, nothing left open.
    fn check_production(&self) -> Checked {
        if self.signing.key_file.is_empty() {
            return fail(
                "signing.key_file",
                "NOWATCH_OTA_ENV=production refuses the built-in dev signing key; set a key file",
            );
        }
        if self.auth.algorithm.starts_with("HS") && self.auth.hs_secret.expose_secret() == DEV_HS_SECRET {
            return fail("auth.hs_secret", "NOWATCH_OTA_ENV=production refuses the dev JWT secret");
        }
        if self.metrics.token.expose_secret().is_empty() {
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
        Ok(())
    }
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
            if nowatch_ota_core::request_path::unsafe_path(prefix).is_some()
                || prefix.contains(['?', '#', '%'])
            {
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
