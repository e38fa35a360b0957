//! Token verification. The accepted algorithm comes from configuration, never from the token,
//! so `alg: none` and HS/RS key confusion are refused by construction.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{AuthSettings, JwtAlgorithm};

/// Why a token was refused. The text goes to the client, so it never echoes the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed Authorization header: expected \"Bearer <token>\"")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has the wrong issuer")]
    WrongIssuer,
    #[error("token has the wrong audience")]
    WrongAudience,
    #[error("token algorithm not accepted")]
    WrongAlgorithm,
    #[error("token has no subject")]
    NoSubject,
    #[error("invalid token")]
    Invalid,
}

/// The verified identity behind a request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub sub: String,
    pub is_admin: bool,
    /// The token's roles (`auth.roles_claim`), for `firmware.channel_roles`.
    pub roles: std::sync::Arc<[String]>,
    /// The devices the token names in `auth.device_claim`, when that is configured (empty if the
    /// token names none); `None` when it is not.
    pub devices: Option<std::sync::Arc<[String]>>,
}

/// Verifies bearer tokens against the configured key, algorithm, issuer and audience.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    admin_flag_claim: String,
    roles_claim: String,
    device_claim: Option<String>,
    verified: VerifiedTokens,
}

/// Tokens this process has verified, until they expire. A watch sends the same token on every
/// update check, and verifying it again was a third of a check's instructions (bench/PROFILE.md).
/// Keyed by the token's SHA-256, so the tokens themselves are not kept; an entry is only ever
/// found by the exact bytes that passed verification, and is never used past `exp` + leeway.
/// Bounded: when full, expired entries go, and if none had expired, all of them.
struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Verified>>,
    capacity: usize,
}

#[derive(Clone)]
struct Verified {
    identity: Identity,
    /// Unix seconds after which the token is refused: `exp` + leeway.
    valid_until: u64,
}

impl VerifiedTokens {
    const CAPACITY: usize = 10_000;

    fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity }
    }

    fn get(&self, key: &[u8; 32], now: u64) -> Option<Identity> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(key).filter(|v| now <= v.valid_until).map(|v| v.identity.clone())
    }

    fn insert(&self, key: [u8; 32], verified: Verified, now: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, v| now <= v.valid_until);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, verified);
    }
}

impl JwtVerifier {
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let JwtAlgorithm(alg) = JwtAlgorithm::parse(&settings.algorithm)
            .ok_or_else(|| anyhow::anyhow!("`auth.algorithm`: unknown algorithm"))?;
        let key = if settings.algorithm.starts_with("HS") {
            DecodingKey::from_secret(settings.hs_secret.expose_secret().as_bytes())
        } else {
            let pem = std::fs::read(&settings.public_key_file).map_err(|e| {
                anyhow::anyhow!("`auth.public_key_file`: cannot read {}: {e}", settings.public_key_file)
            })?;
            let parsed = match alg {
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => DecodingKey::from_rsa_pem(&pem),
            };
            parsed.map_err(|e| anyhow::anyhow!("`auth.public_key_file`: not a usable PEM key: {e}"))?
        };
        let mut validation = Validation::new(alg);
        validation.leeway = settings.leeway_s;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        // A configured issuer or audience must also be present, not merely right when present.
        let mut required = HashSet::from(["exp".to_owned()]);
        if settings.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&settings.issuer]);
            required.insert("iss".to_owned());
        }
        if settings.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&settings.audience]);
            required.insert("aud".to_owned());
        }
        validation.required_spec_claims = required;
        Ok(Self {
            key,
            validation,
            admin_flag_claim: settings.admin_flag_claim.clone(),
            roles_claim: settings.roles_claim.clone(),
            device_claim: Some(settings.device_claim.clone()).filter(|c| !c.is_empty()),
            verified: VerifiedTokens::new(VerifiedTokens::CAPACITY),
        })
    }

    /// Verifies a raw token and reads who it is for; a token verified before is taken from
    /// memory until it expires.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(identity) = self.verified.get(&key, now) {
            return Ok(identity);
        }
        let (identity, exp) = self.verify_signature_and_claims(token)?;
        let valid_until = exp.saturating_add(self.validation.leeway);
        self.verified.insert(key, Verified { identity: identity.clone(), valid_until }, now);
        Ok(identity)
    }

    /// The full check, with the token's `exp` (required by the validation).
    fn verify_signature_and_claims(&self, token: &str) -> Result<(Identity, u64), AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                    ErrorKind::InvalidAudience => AuthError::WrongAudience,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        AuthError::WrongAlgorithm
                    }
                    _ => AuthError::Invalid,
                }
            })?;
        let claims = data.claims;
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(AuthError::NoSubject),
        };
        let flag = claims.get(&self.admin_flag_claim) == Some(&Value::Bool(true));
        // At most a few dozen roles are kept: they are compared against `firmware.channel_roles`.
        let roles: std::sync::Arc<[String]> = claims
            .get(&self.roles_claim)
            .and_then(Value::as_array)
            .map(|roles| roles.iter().filter_map(Value::as_str).take(32).map(str::to_owned).collect())
            .unwrap_or_default();
        let role = roles.iter().any(|r| r == "admin");
        // `exp` is a required claim, so validation has read it as a number already.
        let exp = claims.get("exp").and_then(|e| e.as_u64().or_else(|| e.as_f64().map(|f| f as u64)));
        let devices = self.device_claim.as_ref().map(|claim| match claims.get(claim) {
            Some(Value::String(one)) => vec![one.clone()].into(),
            Some(Value::Array(many)) => many.iter().filter_map(|d| d.as_str().map(str::to_owned)).collect(),
            _ => Vec::new().into(),
        });
        Ok((Identity { sub, is_admin: flag || role, roles, devices }, exp.ok_or(AuthError::Invalid)?))
    }
}

/// Mints a token with the configured HS secret, for trying the API locally (`dev-token`).
pub fn mint_dev_token(settings: &AuthSettings, sub: &str, admin: bool, ttl_s: u64) -> anyhow::Result<String> {
    let JwtAlgorithm(alg) = JwtAlgorithm::parse(&settings.algorithm)
        .filter(|_| settings.algorithm.starts_with("HS"))
        .ok_or_else(|| {
            anyhow::anyhow!("dev-token signs with auth.hs_secret, so auth.algorithm must be HS*")
        })?;
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = Map::new();
    claims.insert("sub".into(), sub.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl_s).into());
    if admin {
        claims.insert(settings.admin_flag_claim.clone(), true.into());
    }
    if !settings.issuer.is_empty() {
        claims.insert("iss".into(), settings.issuer.clone().into());
    }
    if !settings.audience.is_empty() {
        claims.insert("aud".into(), settings.audience.clone().into());
    }
    let key = EncodingKey::from_secret(settings.hs_secret.expose_secret().as_bytes());
    Ok(jsonwebtoken::encode(&Header::new(alg), &claims, &key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(sub: &str, valid_until: u64) -> Verified {
        Verified {
            identity: Identity { sub: sub.into(), is_admin: false, roles: Default::default(), devices: None },
            valid_until,
        }
    }

    #[test]
    fn a_remembered_token_is_refused_after_its_expiry() {
        let cache = VerifiedTokens::new(10);
        cache.insert([1; 32], verified("watch", 1_000), 900);
        assert_eq!(cache.get(&[1; 32], 1_000).map(|i| i.sub), Some("watch".into()));
        assert!(cache.get(&[1; 32], 1_001).is_none());
        assert!(cache.get(&[2; 32], 900).is_none(), "only the same token's hash finds it");
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_and_never_grows_past_its_capacity() {
        let cache = VerifiedTokens::new(3);
        cache.insert([1; 32], verified("expired", 10), 0);
        cache.insert([2; 32], verified("live", 100), 0);
        cache.insert([3; 32], verified("live", 100), 0);
        cache.insert([4; 32], verified("new", 100), 50);
        assert!(cache.get(&[2; 32], 50).is_some(), "live entries stay when an expired one can go");
        assert!(cache.get(&[1; 32], 0).is_none());
        for i in 5..100 {
            cache.insert([i; 32], verified("many", 1_000), 50);
            assert!(cache.entries.lock().unwrap().len() <= 3);
        }
    }
}
