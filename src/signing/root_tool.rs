//! What the `root` commands and `verify --root` do, as functions: make the next root document
//! (`root new`), sign it with an offline root key (`root sign`), check a directory of them as the
//! service will (`root check`), print a key's public half (`root pubkey`), and walk a device's
//! pinned root to the newest version it can reach.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};

use super::offline::parse_public_key;
use super::root::{MAX_ROOT_STEPS, ROOT_SPEC_VERSION, ROOT_TYPE};
use super::{
    ManifestEnvelope, Root, RootBody, RootEnvelope, RootError, RootKey, RootStore, TrustedRoot, key_id,
};
use crate::client::Client;

/// What `root new` is asked for. Lists left empty keep the previous version's.
pub struct NewRoot<'a> {
    /// The version this one follows; none for version 1.
    pub from: Option<&'a Path>,
    pub root_keys: &'a [String],
    pub threshold: Option<u32>,
    /// The online keys that sign manifests; previous ones left out become retired.
    pub manifest_keys: &'a [String],
    /// Retired keys to stop trusting (their manifests have expired).
    pub drop_retired: &'a [String],
    /// Keys (or key ids) to distrust for good.
    pub revoke: &'a [String],
    /// RFC 3339 or YYYY-MM-DD (midnight UTC); none: a year from now.
    pub expires: Option<&'a str>,
}

fn read_envelope(path: &Path) -> anyhow::Result<RootEnvelope> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let envelope: RootEnvelope = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a root document: {e}", path.display()))?;
    Root::from_envelope(&envelope).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(envelope)
}

/// A key id given as 64 hex digits, or the id of a key given as `parse_public_key` takes it.
fn key_id_arg(arg: &str) -> anyhow::Result<String> {
    let arg = arg.trim();
    if arg.len() == 64 && arg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(arg.to_ascii_lowercase());
    }
    Ok(key_id(&parse_public_key(arg)?))
}

fn listed_keys(args: &[String]) -> anyhow::Result<Vec<RootKey>> {
    args.iter().map(|a| Ok(RootKey::new(&parse_public_key(a)?))).collect()
}

fn parse_expiry(arg: Option<&str>) -> anyhow::Result<DateTime<Utc>> {
    let Some(arg) = arg else { return Ok(Utc::now() + chrono::Duration::days(365)) };
    if let Ok(at) = DateTime::parse_from_rfc3339(arg) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(arg, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| anyhow::anyhow!("--expires {arg:?}: neither RFC 3339 nor YYYY-MM-DD"))
}

/// The unsigned document `root new` writes: version 1 from the arguments, or the version after
/// `from` with its keys carried forward and changed as asked.
pub fn new_root(args: &NewRoot<'_>) -> anyhow::Result<RootEnvelope> {
    let previous = args.from.map(read_envelope).transpose()?.map(|e| e.body()).transpose()?;
    let first = |what: &str| anyhow::anyhow!("{what} is required for version 1 (without --from)");
    let mut revoked = previous.as_ref().map(|p| p.revoked_key_ids.clone()).unwrap_or_default();
    for arg in args.revoke {
        let id = key_id_arg(arg)?;
        if !revoked.contains(&id) {
            revoked.push(id);
        }
    }
    let root_keys = match (args.root_keys, &previous) {
        ([], Some(p)) => p.root_keys.clone(),
        ([], None) => return Err(first("--root-key")),
        (given, _) => listed_keys(given)?,
    };
    let manifest_keys = match (args.manifest_keys, &previous) {
        ([], Some(p)) => p.manifest_keys.clone(),
        ([], None) => return Err(first("--manifest-key")),
        (given, _) => listed_keys(given)?,
    };
    for key in root_keys.iter().chain(&manifest_keys) {
        anyhow::ensure!(
            !revoked.contains(&key.key_id),
            "key {} is revoked; it cannot be trusted again",
            key.key_id
        );
    }
    // A manifest key the new version no longer lists is retired, so the manifests it signed
    // still verify until they expire.
    let mut retired: Vec<RootKey> = Vec::new();
    if let Some(p) = &previous {
        for key in p.retired_manifest_keys.iter().chain(&p.manifest_keys) {
            if !manifest_keys.contains(key) && !retired.contains(key) {
                retired.push(key.clone());
            }
        }
    }
    for arg in args.drop_retired {
        let id = key_id_arg(arg)?;
        let before = retired.len();
        retired.retain(|k| k.key_id != id);
        anyhow::ensure!(retired.len() < before, "--drop-retired {arg}: key {id} is not retired");
    }
    retired.retain(|k| !revoked.contains(&k.key_id));
    let threshold = match (args.threshold, &previous) {
        (Some(t), _) => t,
        (None, Some(p)) => p.threshold,
        (None, None) => return Err(first("--threshold")),
    };
    let body = RootBody {
        kind: ROOT_TYPE.into(),
        spec_version: ROOT_SPEC_VERSION.into(),
        version: previous.as_ref().map_or(1, |p| p.version + 1),
        expires_at: parse_expiry(args.expires)?.to_rfc3339_opts(SecondsFormat::Secs, true),
        root_keys,
        threshold,
        manifest_keys,
        retired_manifest_keys: retired,
        revoked_key_ids: revoked,
    };
    let envelope = RootEnvelope::unsigned(&body)?;
    Root::from_envelope(&envelope)?;
    Ok(envelope)
}

/// Writes `envelope` to `path`, which must not exist.
pub fn write_new(path: &Path, envelope: &RootEnvelope) -> anyhow::Result<()> {
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| {
            anyhow::anyhow!("{}: {e} (refusing to overwrite a root document)", path.display())
        })?;
    file.write_all(format!("{}\n", serde_json::to_string_pretty(envelope)?).as_bytes())?;
    Ok(())
}

/// Adds the signature of the root key in `key_pem` to the document at `path` (in place, through
/// a temporary file and a rename). Returns what the signature counts for.
pub fn sign_root(path: &Path, key_pem: &Path) -> anyhow::Result<String> {
    let mut envelope = read_envelope(path)?;
    let pem = std::fs::read_to_string(key_pem).map_err(|e| anyhow::anyhow!("{}: {e}", key_pem.display()))?;
    let key = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: not a PKCS#8 ed25519 key: {e}", key_pem.display()))?;
    envelope.sign(&key)?;
    let root = Root::from_envelope(&envelope)?;
    let temporary = path.with_extension("json.signing");
    std::fs::write(&temporary, format!("{}\n", serde_json::to_string_pretty(&envelope)?))?;
    std::fs::rename(&temporary, path)?;
    let id = key_id(&key.verifying_key());
    let role = if root.root_key_ids().any(|k| k == id) {
        format!("a root key of version {}", root.version())
    } else {
        format!(
            "not a root key of version {}: it counts only toward version {}'s threshold",
            root.version(),
            root.version().saturating_sub(1)
        )
    };
    let (valid, threshold) = root.signed_by_own_keys();
    Ok(format!(
        "signed root version {} with key {id} ({role}); valid signatures by its own root keys: {valid} of \
         threshold {threshold}",
        root.version()
    ))
}

/// Checks a directory of root documents exactly as the service does at start-up.
pub fn check_dir(dir: &Path) -> anyhow::Result<String> {
    let store = RootStore::load_dir(dir)?;
    let newest = store.newest();
    let root = newest.root();
    let fresh = match newest.check_fresh(Utc::now()) {
        Ok(()) => format!("expires {}", root.expires_at().to_rfc3339_opts(SecondsFormat::Secs, true)),
        Err(e) => format!("WARNING: {e}"),
    };
    let manifest_keys: Vec<String> = newest.manifest_keys().into_iter().map(|(id, _)| id).collect();
    Ok(format!(
        "OK: root versions 1 to {} each signed by the threshold of the version before and of their own; \
         newest: version {}, {fresh}, threshold {} of {} root keys, manifest keys (active, then retired): {}",
        store.newest_version(),
        root.version(),
        root.threshold(),
        root.root_key_ids().count(),
        manifest_keys.join(", ")
    ))
}

/// The public half of a key (any form `parse_public_key` takes) as SubjectPublicKeyInfo PEM.
pub fn public_pem(arg: &str) -> anyhow::Result<String> {
    Ok(parse_public_key(arg)?.to_public_key_pem(LineEnding::LF)?)
}

/// Where a device's trust comes from: its pinned root, and newer versions as files or from a
/// service.
pub struct RootSources<'a> {
    pub pinned: &'a Path,
    pub updates: &'a [PathBuf],
    pub server: Option<&'a str>,
    pub token: Option<&'a str>,
}

/// Walks from the pinned root through the given newer versions (in version order), then through
/// whatever newer versions the service has, one at a time; the root reached must not have
/// expired.
pub async fn walk(sources: &RootSources<'_>) -> anyhow::Result<TrustedRoot> {
    let read = |flag: &str, path: &Path| -> anyhow::Result<Root> {
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
        Root::parse(&bytes).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
    };
    let mut trusted = TrustedRoot::pin(read("--root", sources.pinned)?)
        .map_err(|e| anyhow::anyhow!("--root {}: {e}", sources.pinned.display()))?;
    let mut updates = sources
        .updates
        .iter()
        .map(|p| Ok((read("--root-update", p)?, p)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    updates.sort_by_key(|(root, _)| root.version());
    for (root, path) in updates {
        trusted =
            trusted.update(root).map_err(|e| anyhow::anyhow!("--root-update {}: {e}", path.display()))?;
    }
    if let Some(server) = sources.server {
        // The newest first: usually the device has it already and one request is all. Then the
        // versions between, by number.
        let client = Client::new(server, sources.token.unwrap_or_default())?;
        let from_server = |version: Option<u64>, e: &dyn std::fmt::Display| match version {
            Some(v) => anyhow::anyhow!("root version {v} from {server}: {e}"),
            None => anyhow::anyhow!("the newest root from {server}: {e}"),
        };
        let bytes = client.root_document(None).await?.ok_or_else(|| from_server(None, &"not found"))?;
        let newest = Root::parse(&bytes).map_err(|e| from_server(None, &e))?;
        if newest.version() < trusted.version() {
            eprintln!(
                "warning: {server} serves root version {} as its newest, older than the trusted version {}; \
                 keeping version {}",
                newest.version(),
                trusted.version(),
                trusted.version()
            );
        }
        if newest.version() - trusted.version().min(newest.version()) > MAX_ROOT_STEPS {
            return Err(RootError::TooManySteps.into());
        }
        for version in trusted.version() + 1..newest.version() {
            let bytes = client.root_document(Some(version)).await?.ok_or_else(|| {
                from_server(Some(version), &format!("missing, though version {} is served", newest.version()))
            })?;
            let root = Root::parse(&bytes).map_err(|e| from_server(Some(version), &e))?;
            trusted = trusted.update(root).map_err(|e| from_server(Some(version), &e))?;
        }
        if newest.version() > trusted.version() {
            let version = newest.version();
            trusted = trusted.update(newest).map_err(|e| from_server(Some(version), &e))?;
        }
    }
    trusted.check_fresh(Utc::now())?;
    Ok(trusted)
}

/// The keys `trusted` allows for the manifest at `manifest_path`, or why it allows none (a
/// revoked key, a key it does not list).
pub fn manifest_keys(trusted: &TrustedRoot, manifest_path: &Path) -> anyhow::Result<Vec<VerifyingKey>> {
    let envelope: ManifestEnvelope = serde_json::from_slice(&std::fs::read(manifest_path)?)
        .map_err(|e| anyhow::anyhow!("{}: not a manifest envelope: {e}", manifest_path.display()))?;
    Ok(trusted.keys_for(&envelope)?.into_iter().map(|(_, key)| key).collect())
}
