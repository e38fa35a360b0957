//! The manifest as served: the envelope read leniently, the signature checked over the bytes of
//! `signed` as they stand, then the signed body read and checked against the device, in the
//! spec's order.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::check::{Check, Rejection};
use crate::encoding::{base64_64, hex32};
use crate::json::{Elements, JsonStr, Members, Value};
use crate::time::parse_utc;
use crate::version::Version;

/// The manifest's `type`.
pub const MANIFEST_TYPE: &str = "nowatch-firmware-manifest";

/// A public key the device trusts to sign manifests, with its key id (the SHA-256 of the 32
/// bytes, which is how a signature names its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedKey {
    public: [u8; 32],
    key_id: [u8; 32],
}

impl TrustedKey {
    /// A trusted key; its key id is computed here.
    pub fn new(public: [u8; 32]) -> Self {
        Self { public, key_id: Sha256::digest(public).into() }
    }

    /// A trusted key with its key id computed beforehand, so that a table of keys can be a
    /// `const` in flash. A wrong `key_id` only means no signature ever names this key.
    pub const fn with_key_id(public: [u8; 32], key_id: [u8; 32]) -> Self {
        Self { public, key_id }
    }

    /// The 32-byte ed25519 public key.
    pub const fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// SHA-256 of the public key.
    pub const fn key_id(&self) -> &[u8; 32] {
        &self.key_id
    }
}

/// The device's channel and the channels from most to least stable, e.g. `["stable", "beta"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelFacts<'d> {
    /// The channel the device follows.
    pub channel: &'d str,
    /// Every channel, most stable first; the device's own must be one of them.
    pub order: &'d [&'d str],
}

/// What the device knows about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts<'d> {
    /// Its hardware id; the manifest must name exactly this one.
    pub hardware: &'d str,
    /// The version it runs.
    pub current_version: Version<'d>,
    /// Its channel; `None` skips the `channel` check.
    pub channel: Option<ChannelFacts<'d>>,
    /// The anti-rollback floor it has stored (the highest `min_version` it has installed, say);
    /// `None` if it keeps none.
    pub floor: Option<Version<'d>>,
}

/// The chunk table a spec 1.1 manifest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpec {
    /// Bytes per chunk: a power of two from 512 to 65536.
    pub chunk_size: u32,
    /// SHA-256 of the table's bytes.
    pub table_sha256: [u8; 32],
    /// How many chunks (and table entries) there are: `ceil(size / chunk_size)`.
    pub count: u32,
}

/// A manifest that passed every check up to `floor`: what to fetch and how to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest<'a> {
    /// The release's id (a UUID).
    pub firmware_id: &'a str,
    /// The release's version.
    pub version: Version<'a>,
    /// The channel it was issued for (escapes, if any, left as they stand).
    pub channel: &'a str,
    /// Image size in bytes.
    pub size: u64,
    /// SHA-256 of the whole image.
    pub sha256: [u8; 32],
    /// Whether the update is mandatory.
    pub mandatory: bool,
    /// When the manifest stops being valid, in unix seconds.
    pub expires_at: u64,
    /// The chunk table (spec 1.1), or `None` (spec 1.0: check the image whole).
    pub chunks: Option<ChunkSpec>,
}

const fn reject(check: Check, reason: &'static str) -> Rejection {
    Rejection::new(check, reason)
}

/// Verifies a manifest exactly as served (`{"signed":<S>,"signatures":[...]}`) for this device
/// at `now_unix`: `signature`, `type`, `expiry`, `hardware`, `channel`, `newer`,
/// `min_from_version`, `floor` in that order, then that the fields naming the image (`image`)
/// and its chunk table (`chunk_table`) are well formed. The first check that fails is the
/// rejection. A field a check reads is that check's to refuse when it is missing or malformed.
pub fn verify_manifest<'a>(
    envelope: &'a [u8],
    trusted: &[TrustedKey],
    device: &DeviceFacts<'_>,
    now_unix: u64,
) -> Result<Manifest<'a>, Rejection> {
    let signed = verify_signature(envelope, trusted)?;
    let body = Body::read(signed)?;
    body.check(device, now_unix)
}

/// `signature`: the envelope's `signed` bytes, if some signature whose key id is a trusted key's
/// verifies over them (`verify_strict`). The envelope may have its members in any order and
/// whitespace between tokens; unknown members are ignored, a repeated one refused.
fn verify_signature<'a>(envelope: &'a [u8], trusted: &[TrustedKey]) -> Result<&'a [u8], Rejection> {
    let malformed = reject(Check::Signature, "the envelope is not {\"signed\":{..},\"signatures\":[..]}");
    let mut members = Members::new(envelope).map_err(|_| malformed)?;
    let (mut signed, mut signatures) = (None, None);
    while let Some((key, value)) = members.next_member().map_err(|_| malformed)? {
        // Keys compare as JSON strings (escapes decoded), as any other reader would match them,
        // so that `"sign\u0065d"` is a repeated `signed`, not an ignored member.
        let slot = match () {
            () if key.equals("signed") => &mut signed,
            () if key.equals("signatures") => &mut signatures,
            () => continue,
        };
        if slot.replace(value).is_some() {
            return Err(reject(Check::Signature, "the envelope repeats a member"));
        }
    }
    let (Some(Value::Object(signed)), Some(Value::Array(signatures))) = (signed, signatures) else {
        return Err(malformed);
    };
    let mut entries = Elements::new(signatures).map_err(|_| malformed)?;
    while let Some(entry) = entries.next_element().map_err(|_| malformed)? {
        if signature_verifies(entry, signed, trusted) {
            return Ok(signed);
        }
    }
    Err(reject(Check::Signature, "no signature by a trusted key verifies"))
}

/// Whether one `{"key_id":..,"sig":..}` entry names a trusted key and verifies over `message`.
/// An entry that cannot be read is one that does not verify: another one may.
fn signature_verifies(entry: Value<'_>, message: &[u8], trusted: &[TrustedKey]) -> bool {
    let Value::Object(bytes) = entry else { return false };
    let Ok(mut members) = Members::new(bytes) else { return false };
    let (mut key_id, mut sig) = (None, None);
    while let Ok(Some((key, value))) = members.next_member() {
        let slot = match () {
            () if key.equals("key_id") => &mut key_id,
            () if key.equals("sig") => &mut sig,
            () => continue,
        };
        if slot.replace(value).is_some() {
            return false;
        }
    }
    let (Some(Value::Str(key_id)), Some(Value::Str(sig))) = (key_id, sig) else { return false };
    let Some(key_id) = key_id.plain().and_then(hex32) else { return false };
    let Some(sig) = sig.plain().and_then(base64_64) else { return false };
    let Some(key) = trusted.iter().find(|k| k.key_id == key_id) else { return false };
    let Ok(key) = VerifyingKey::from_bytes(&key.public) else { return false };
    key.verify_strict(message, &Signature::from_bytes(&sig)).is_ok()
}

/// The members of the signed body a device reads, each as it stands.
#[derive(Default)]
struct Body<'a> {
    kind: Option<Value<'a>>,
    expires_at: Option<Value<'a>>,
    hardware: Option<Value<'a>>,
    channel: Option<Value<'a>>,
    version: Option<Value<'a>>,
    min_from_version: Option<Value<'a>>,
    min_version: Option<Value<'a>>,
    firmware_id: Option<Value<'a>>,
    size: Option<Value<'a>>,
    sha256: Option<Value<'a>>,
    mandatory: Option<Value<'a>>,
    chunk_size: Option<Value<'a>>,
    chunk_table_sha256: Option<Value<'a>>,
}

impl<'a> Body<'a> {
    /// `type` (first half): the signed bytes are one JSON object with no repeated known member.
    fn read(signed: &'a [u8]) -> Result<Self, Rejection> {
        let malformed = reject(Check::Type, "the signed body is not a JSON object");
        let mut body = Body::default();
        let mut members = Members::new(signed).map_err(|_| malformed)?;
        while let Some((key, value)) = members.next_member().map_err(|_| malformed)? {
            let Some(slot) = body.slot(key) else { continue };
            if slot.replace(value).is_some() {
                return Err(reject(Check::Type, "the signed body repeats a member"));
            }
        }
        Ok(body)
    }

    fn slot(&mut self, key: JsonStr<'_>) -> Option<&mut Option<Value<'a>>> {
        // Unknown keys, and those no device check reads (`issued_at`, `spec_version`,
        // `release_signature`), are ignored. Keys compare with escapes decoded.
        let slots: [(&str, &mut Option<Value<'a>>); 13] = [
            ("type", &mut self.kind),
            ("expires_at", &mut self.expires_at),
            ("hardware", &mut self.hardware),
            ("channel", &mut self.channel),
            ("version", &mut self.version),
            ("min_from_version", &mut self.min_from_version),
            ("min_version", &mut self.min_version),
            ("firmware_id", &mut self.firmware_id),
            ("size", &mut self.size),
            ("sha256", &mut self.sha256),
            ("mandatory", &mut self.mandatory),
            ("chunk_size", &mut self.chunk_size),
            ("chunk_table_sha256", &mut self.chunk_table_sha256),
        ];
        slots.into_iter().find(|(name, _)| key.equals(name)).map(|(_, slot)| slot)
    }

    fn check(&self, device: &DeviceFacts<'_>, now_unix: u64) -> Result<Manifest<'a>, Rejection> {
        // type
        match self.kind {
            Some(Value::Str(kind)) if kind.plain() == Some(MANIFEST_TYPE) => {}
            _ => return Err(reject(Check::Type, "type is not nowatch-firmware-manifest")),
        }
        // expiry
        let expires_at = plain(self.expires_at)
            .and_then(parse_utc)
            .ok_or(reject(Check::Expiry, "expires_at is not YYYY-MM-DDTHH:MM:SSZ"))?;
        if now_unix >= expires_at {
            return Err(reject(Check::Expiry, "the manifest has expired"));
        }
        // hardware
        check_hardware(self.hardware, device.hardware)?;
        // channel
        let Some(Value::Str(channel)) = self.channel else {
            return Err(reject(Check::Channel, "channel is not a string"));
        };
        if let Some(facts) = device.channel {
            check_channel(channel, facts)?;
        }
        // newer
        let version = plain(self.version)
            .and_then(|v| Version::parse(v).ok())
            .ok_or(reject(Check::Newer, "version is not a semver version"))?;
        if version.cmp_precedence(&device.current_version).is_le() {
            return Err(reject(Check::Newer, "version is not above the current version"));
        }
        // min_from_version
        let min_from = optional_version(self.min_from_version).map_err(|()| {
            reject(Check::MinFromVersion, "min_from_version is not a semver version or null")
        })?;
        if min_from.is_some_and(|min| device.current_version.cmp_precedence(&min).is_lt()) {
            return Err(reject(Check::MinFromVersion, "the current version is below min_from_version"));
        }
        // floor
        let min_version = optional_version(self.min_version)
            .map_err(|()| reject(Check::Floor, "min_version is not a semver version or null"))?;
        if min_version.is_some_and(|min| version.cmp_precedence(&min).is_lt()) {
            return Err(reject(Check::Floor, "version is below min_version"));
        }
        if device.floor.is_some_and(|floor| version.cmp_precedence(&floor).is_lt()) {
            return Err(reject(Check::Floor, "version is below the device's stored floor"));
        }
        self.image(version, channel, expires_at)
    }

    /// `image` and `chunk_table`: the fields that say what to fetch are well formed.
    fn image(
        &self,
        version: Version<'a>,
        channel: JsonStr<'a>,
        expires_at: u64,
    ) -> Result<Manifest<'a>, Rejection> {
        let firmware_id =
            plain(self.firmware_id).ok_or(reject(Check::Image, "firmware_id is not a string"))?;
        let size = self.size.and_then(Value::as_u64).ok_or(reject(Check::Image, "size is not an integer"))?;
        let sha256 =
            plain(self.sha256).and_then(hex32).ok_or(reject(Check::Image, "sha256 is not 64 hex"))?;
        let Some(Value::Bool(mandatory)) = self.mandatory else {
            return Err(reject(Check::Image, "mandatory is not a bool"));
        };
        let chunks = match (self.chunk_size, self.chunk_table_sha256) {
            (None, None) => None,
            (Some(chunk_size), Some(table)) => Some(chunk_spec(chunk_size, table, size)?),
            _ => return Err(reject(Check::ChunkTable, "one chunk field without the other")),
        };
        Ok(Manifest {
            firmware_id,
            version,
            channel: channel.raw(),
            size,
            sha256,
            mandatory,
            expires_at,
            chunks,
        })
    }
}

/// The string value, if it is one without escapes.
fn plain(value: Option<Value<'_>>) -> Option<&str> {
    match value {
        Some(Value::Str(s)) => s.plain(),
        _ => None,
    }
}

/// A version, or `None` for null or an absent member; `Err` for anything else.
fn optional_version(value: Option<Value<'_>>) -> Result<Option<Version<'_>>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => s.plain().and_then(|v| Version::parse(v).ok()).map(Some).ok_or(()),
        Some(_) => Err(()),
    }
}

fn check_hardware(hardware: Option<Value<'_>>, mine: &str) -> Result<(), Rejection> {
    let malformed = reject(Check::Hardware, "hardware is not an array of strings");
    let Some(Value::Array(list)) = hardware else { return Err(malformed) };
    let mut items = Elements::new(list).map_err(|_| malformed)?;
    let first = items.next_element().map_err(|_| malformed)?;
    let only = match first {
        Some(Value::Str(id)) => items.next_element().map_err(|_| malformed)?.is_none() && id.equals(mine),
        Some(_) => return Err(malformed),
        None => false,
    };
    match only {
        true => Ok(()),
        false => Err(reject(Check::Hardware, "the manifest is not for exactly this hardware")),
    }
}

fn check_channel(channel: JsonStr<'_>, facts: ChannelFacts<'_>) -> Result<(), Rejection> {
    let rank = |c: &dyn Fn(&str) -> bool| facts.order.iter().position(|o| c(o));
    let mine = rank(&|o| o == facts.channel)
        .ok_or(reject(Check::Channel, "the device's channel is not in its channel order"))?;
    match rank(&|o| channel.equals(o)) {
        Some(theirs) if theirs <= mine => Ok(()),
        _ => Err(reject(Check::Channel, "the manifest's channel is less stable than the device's")),
    }
}

fn chunk_spec(chunk_size: Value<'_>, table: Value<'_>, size: u64) -> Result<ChunkSpec, Rejection> {
    let chunk_size = chunk_size
        .as_u64()
        .and_then(|c| u32::try_from(c).ok())
        .filter(|c| c.is_power_of_two() && (512..=65536).contains(c))
        .ok_or(reject(Check::ChunkTable, "chunk_size is not a power of two from 512 to 65536"))?;
    let Value::Str(table) = table else {
        return Err(reject(Check::ChunkTable, "chunk_table_sha256 is not 64 hex"));
    };
    let table_sha256 =
        table.plain().and_then(hex32).ok_or(reject(Check::ChunkTable, "chunk_table_sha256 is not 64 hex"))?;
    // Checked division: the filter above keeps chunk_size non-zero, but the optimiser cannot see
    // it and would keep a division-by-zero panic in the code.
    let c = u64::from(chunk_size);
    let count = size
        .checked_div(c)
        .zip(size.checked_rem(c))
        .and_then(|(whole, rest)| whole.checked_add(u64::from(rest != 0)))
        .and_then(|count| u32::try_from(count).ok())
        .ok_or(reject(Check::ChunkTable, "more chunks than 2^32"))?;
    Ok(ChunkSpec { chunk_size, table_sha256, count })
}
