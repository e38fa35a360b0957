//! The watch's verifier (`nowatch_ota_watch`) against a reference written with std code
//! (serde_json, semver, chrono, ed25519-dalek, sha2). Input: one byte picks the mode, the rest
//! is its input.
//! - 0, arbitrary bytes as an envelope: no panic; whatever verifies is an envelope serde_json
//!   reads whose `signed` bytes carry a signature by the trusted key, with the fields the
//!   reference reads from them.
//! - 1, a manifest signed here with one byte edit: 4 bytes pick the edit (position, value,
//!   replace/insert/delete), 1 byte of flags, then lines of text for the version, the device's
//!   version, `min_version`, `min_from_version`, the device's floor, `expires_at`, hardware and
//!   channel. Unedited, the verdict is the reference's, check for check; edited, it is too
//!   whenever the edit leaves `<S>` as it was, and whatever verifies has exactly `<S>`.
//! - 2, a chunked image: 1 byte picks the chunk size, 2 the image size, then the image, then
//!   operations: the table fed in arbitrary splits (and maybe edited), chunks checked in arbitrary
//!   order (some edited), the image fed in order in arbitrary splits (maybe edited). Every
//!   verdict is the one computed by comparing bytes with the real chunks.
#![no_main]

use std::cmp::Ordering;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use nowatch_ota_core::signing::{ManifestSigner, canonical_json};
use nowatch_ota_watch::{
    ChannelFacts, ChunkVerdict, DeviceFacts, ImageCheck, Manifest, SequentialChunks, TableCheck, TrustedKey,
    Version, bitmap_len, verify_manifest,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

static SIGNER: LazyLock<ManifestSigner> =
    LazyLock::new(|| ManifestSigner::new(SigningKey::from_bytes(&[7; 32]), Vec::new()));
static TRUSTED: LazyLock<[TrustedKey; 1]> =
    LazyLock::new(|| [TrustedKey::new(SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes())]);
/// 2026-06-01T00:00:00Z.
const NOW: u64 = 1_780_272_000;
const ORDER: &[&str] = &["stable", "beta", "alpha"];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The device as the reference sees it.
struct RefDevice {
    hardware: String,
    current: semver::Version,
    channel: Option<String>,
    floor: Option<semver::Version>,
}

/// The fields the reference reads from a verified body.
#[derive(Debug, PartialEq)]
struct Fields {
    firmware_id: String,
    version: String,
    size: u64,
    sha256: [u8; 32],
    mandatory: bool,
    expires_at: u64,
    chunks: Option<(u32, [u8; 32], u32)>,
}

fn fields(m: &Manifest<'_>) -> Fields {
    Fields {
        firmware_id: m.firmware_id.to_owned(),
        version: m.version.as_str().to_owned(),
        size: m.size,
        sha256: m.sha256,
        mandatory: m.mandatory,
        expires_at: m.expires_at,
        chunks: m.chunks.map(|c| (c.chunk_size, c.table_sha256, c.count)),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` by position, the date and time checked by chrono.
fn ref_time(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text[r].parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(n(0..4)? as i32, n(5..7)?, n(8..10)?)?;
    let time = date.and_hms_opt(n(11..13)?, n(14..16)?, n(17..19)?)?;
    u64::try_from(time.and_utc().timestamp()).ok()
}

fn ref_version(value: Option<&Value>) -> Result<Option<semver::Version>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => semver::Version::parse(s).map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// The device checks after `signature`, as the spec lists them, on the body serde_json reads.
fn reference(s: &[u8], device: &RefDevice, now: u64) -> Result<Fields, &'static str> {
    let body: serde_json::Map<String, Value> = serde_json::from_slice(s).map_err(|_| "type")?;
    let str_of = |key: &str| body.get(key).and_then(Value::as_str);
    if str_of("type") != Some("nowatch-firmware-manifest") {
        return Err("type");
    }
    let expires_at = str_of("expires_at").and_then(ref_time).ok_or("expiry")?;
    if now >= expires_at {
        return Err("expiry");
    }
    match body.get("hardware") {
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            if list.len() != 1 || list[0] != device.hardware.as_str() {
                return Err("hardware");
            }
        }
        _ => return Err("hardware"),
    }
    let channel = str_of("channel").ok_or("channel")?;
    if let Some(mine) = &device.channel {
        let rank = |c: &str| ORDER.iter().position(|o| *o == c);
        match (rank(mine), rank(channel)) {
            (Some(mine), Some(theirs)) if theirs <= mine => {}
            _ => return Err("channel"),
        }
    }
    let version = str_of("version").and_then(|v| semver::Version::parse(v).ok()).ok_or("newer")?;
    if version.cmp_precedence(&device.current) != Ordering::Greater {
        return Err("newer");
    }
    let min_from = ref_version(body.get("min_from_version")).map_err(|()| "min_from_version")?;
    if min_from.is_some_and(|m| device.current.cmp_precedence(&m) == Ordering::Less) {
        return Err("min_from_version");
    }
    let min_version = ref_version(body.get("min_version")).map_err(|()| "floor")?;
    for floor in [min_version.as_ref(), device.floor.as_ref()].into_iter().flatten() {
        if version.cmp_precedence(floor) == Ordering::Less {
            return Err("floor");
        }
    }
    let firmware_id = str_of("firmware_id").ok_or("image")?.to_owned();
    let size = body.get("size").and_then(Value::as_u64).ok_or("image")?;
    let digest = |v: Option<&str>| {
        let v = v.filter(|v| v.len() == 64 && !v.bytes().any(|b| b.is_ascii_uppercase()))?;
        <[u8; 32]>::try_from(hex::decode(v).ok()?).ok()
    };
    let sha256 = digest(str_of("sha256")).ok_or("image")?;
    let mandatory = body.get("mandatory").and_then(Value::as_bool).ok_or("image")?;
    let chunks = match (body.get("chunk_size"), body.get("chunk_table_sha256")) {
        (None, None) => None,
        (Some(c), Some(t)) => {
            let c = c
                .as_u64()
                .filter(|c| c.is_power_of_two() && (512..=65536).contains(c))
                .ok_or("chunk_table")?;
            let t = digest(t.as_str()).ok_or("chunk_table")?;
            Some((c as u32, t, u32::try_from(size.div_ceil(c)).map_err(|_| "chunk_table")?))
        }
        _ => return Err("chunk_table"),
    };
    Ok(Fields { firmware_id, version: version.to_string(), size, sha256, mandatory, expires_at, chunks })
}

#[derive(Deserialize)]
struct RefEnvelope<'a> {
    #[serde(borrow)]
    signed: &'a RawValue,
    #[serde(borrow)]
    signatures: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct RefSignature<'a> {
    key_id: &'a str,
    sig: &'a str,
}

/// The `signed` bytes of `envelope` if serde_json reads it and a signature by the trusted key
/// verifies over them.
fn ref_signed(envelope: &[u8]) -> Option<&[u8]> {
    let envelope: RefEnvelope<'_> = serde_json::from_slice(envelope).ok()?;
    let signed = envelope.signed.get().as_bytes();
    let key = VerifyingKey::from_bytes(&SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes()).ok()?;
    let verifies = envelope.signatures.iter().any(|entry| {
        let Ok(entry) = serde_json::from_str::<RefSignature<'_>>(entry.get()) else { return false };
        let Ok(Ok(sig)) = BASE64.decode(entry.sig).map(|b| Signature::from_slice(&b)) else { return false };
        entry.key_id == SIGNER.key_id() && key.verify_strict(signed, &sig).is_ok()
    });
    (verifies && signed.first() == Some(&b'{')).then_some(signed)
}

fn sign(s: &[u8]) -> Vec<u8> {
    let s = std::str::from_utf8(s).unwrap_or_default();
    format!(
        r#"{{"signed":{s},"signatures":[{{"key_id":"{}","sig":"{}"}}]}}"#,
        SIGNER.key_id(),
        SIGNER.sign(s.as_bytes())
    )
    .into_bytes()
}

fn arbitrary_envelope(data: &[u8]) {
    let device = DeviceFacts {
        hardware: "nw-s1-rev3",
        current_version: Version::parse("1.0.0").unwrap_or_else(|_| unreachable!()),
        channel: None,
        floor: None,
    };
    let Ok(manifest) = verify_manifest(data, &*TRUSTED, &device, NOW) else { return };
    let signed = ref_signed(data).unwrap_or_else(|| panic!("verified, not for the reference"));
    let ref_device = RefDevice {
        hardware: "nw-s1-rev3".into(),
        current: semver::Version::new(1, 0, 0),
        channel: None,
        floor: None,
    };
    assert_eq!(Ok(fields(&manifest)), reference(signed, &ref_device, NOW));
}

fn edited_manifest(data: &[u8]) {
    let Some(([at0, at1, value, kind, flags], text)) = data.split_first_chunk::<5>().map(|(a, b)| (*a, b))
    else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let mut lines = text.split('\n');
    let mut line =
        |default: &'static str| lines.next().map(str::to_owned).unwrap_or_else(|| default.to_owned());
    let (version, current, min_version, min_from) = (line("1.4.0"), line("1.0.0"), line("1.0.0"), line(""));
    let (floor, expires_at, hardware, channel) =
        (line(""), line("2026-08-01T12:00:00Z"), line("nw-s1-rev3"), line("beta"));
    let nullable = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    let mut body = json!({
        "type": "nowatch-firmware-manifest",
        "spec_version": "1.0",
        "firmware_id": "7f1c0a52-3b7e-4d59-9a43-1f5cf1b6e0a2",
        "version": version,
        "hardware": [hardware],
        "channel": channel,
        "size": u64::from(flags) << 12,
        "sha256": hex(&sha256(&[flags])),
        "min_version": nullable(&min_version),
        "min_from_version": nullable(&min_from),
        "mandatory": flags & 1 != 0,
        "issued_at": "2026-05-01T12:00:00Z",
        "expires_at": expires_at,
    });
    if flags & 2 != 0 {
        body["chunk_size"] = json!(512u64 << (flags >> 5));
    }
    if flags & 4 != 0 {
        body["chunk_table_sha256"] = json!(hex(&sha256(&[flags, 1])));
    }
    let (Ok(current), Ok(ref_current)) = (Version::parse(&current), semver::Version::parse(&current)) else {
        assert_eq!(Version::parse(&current).is_ok(), semver::Version::parse(&current).is_ok(), "{current:?}");
        return;
    };
    let (floor_v, ref_floor) = match (Version::parse(&floor), semver::Version::parse(&floor)) {
        (Ok(f), Ok(r)) => (Some(f), Some(r)),
        (Err(_), Err(_)) => (None, None),
        _ => panic!("semver and the watch disagree on {floor:?}"),
    };
    let with_channel = flags & 8 != 0;
    let device = DeviceFacts {
        hardware: "nw-s1-rev3",
        current_version: current,
        channel: with_channel.then_some(ChannelFacts { channel: "beta", order: ORDER }),
        floor: floor_v,
    };
    let ref_device = RefDevice {
        hardware: "nw-s1-rev3".into(),
        current: ref_current,
        channel: with_channel.then(|| "beta".to_owned()),
        floor: ref_floor,
    };
    let Ok(s) = canonical_json(&body) else { return };
    let expected = reference(&s, &ref_device, NOW);
    let envelope = sign(&s);
    let verdict = |bytes: &[u8]| match verify_manifest(bytes, &*TRUSTED, &device, NOW) {
        Ok(m) => Ok(fields(&m)),
        Err(r) => Err(r.check.name()),
    };
    assert_eq!(verdict(&envelope), expected, "{}", String::from_utf8_lossy(&s));

    let mut bytes = envelope.clone();
    let at = usize::from(u16::from_le_bytes([at0, at1])) % (bytes.len() + 1);
    match kind % 3 {
        0 if at < bytes.len() => bytes[at] = value,
        1 => bytes.insert(at, value),
        _ if at < bytes.len() => {
            bytes.remove(at);
        }
        _ => return,
    }
    let edited = verdict(&bytes);
    match ref_signed(&bytes) {
        Some(signed) if signed == &s[..] => {
            assert_eq!(edited, expected, "{}", String::from_utf8_lossy(&bytes))
        }
        Some(_) => panic!("the reference verified other bytes"),
        None => assert_eq!(edited, Err("signature"), "{}", String::from_utf8_lossy(&bytes)),
    }
}

/// Next byte of the operations, or 0 once they run out.
fn take(ops: &mut &[u8]) -> u8 {
    let (&b, rest) = ops.split_first().unwrap_or((&0, &[]));
    *ops = rest;
    b
}

fn chunked_image(data: &[u8]) {
    let Some(([c, n0, n1], rest)) = data.split_first_chunk::<3>().map(|(a, b)| (*a, b)) else { return };
    let chunk_size = 512usize << (c % 3);
    let (image, mut ops) = rest.split_at(usize::from(u16::from_le_bytes([n0, n1])).min(rest.len()));
    let table: Vec<u8> = image.chunks(chunk_size).flat_map(sha256).collect();
    let body = json!({
        "type": "nowatch-firmware-manifest", "spec_version": "1.1", "firmware_id": "f",
        "version": "2.0.0", "hardware": ["hw"], "channel": "stable", "size": image.len(),
        "sha256": hex(&sha256(image)), "min_version": null, "min_from_version": null,
        "mandatory": true, "issued_at": "2026-05-01T12:00:00Z", "expires_at": "2026-08-01T12:00:00Z",
        "chunk_size": chunk_size, "chunk_table_sha256": hex(&sha256(&table)),
    });
    let envelope = sign(&canonical_json(&body).unwrap_or_default());
    let device = DeviceFacts {
        hardware: "hw",
        current_version: Version::parse("1.0.0").unwrap_or_else(|_| unreachable!()),
        channel: None,
        floor: None,
    };
    let manifest = verify_manifest(&envelope, &*TRUSTED, &device, NOW).unwrap_or_else(|r| panic!("{r}"));
    let count = image.len().div_ceil(chunk_size);
    assert_eq!(manifest.chunks.map(|c| c.count as usize), Some(count));

    // The table, in arbitrary pieces, maybe with a byte changed.
    let mut fed = table.clone();
    let flip = take(&mut ops);
    if flip & 1 != 0 && !fed.is_empty() {
        let at = usize::from(take(&mut ops)) % fed.len();
        fed[at] ^= flip | 1;
    }
    let mut check = TableCheck::new(&manifest).unwrap_or_else(|r| panic!("{r}"));
    let mut rest = &fed[..];
    while !rest.is_empty() {
        let (piece, after) = rest.split_at((usize::from(take(&mut ops)) % 97).min(rest.len()).max(1));
        check.feed(piece);
        rest = after;
    }
    let verified = match check.finish() {
        Ok(verified) => {
            assert_eq!(fed, table);
            verified
        }
        Err(r) => {
            assert_ne!(fed, table, "{r}");
            return;
        }
    };

    // Chunks in arbitrary order, some changed.
    let chunks: Vec<&[u8]> = image.chunks(chunk_size).collect();
    let mut bitmap = vec![0u8; bitmap_len(count as u32)];
    let mut any_order = ImageCheck::new(verified, &table[..], &mut bitmap).unwrap_or_else(|r| panic!("{r}"));
    let mut accepted = vec![false; count];
    for _ in 0..count * 2 + 1 {
        let index = u32::from(take(&mut ops)) % (count as u32 + 2);
        let edit = take(&mut ops);
        let mut bytes = chunks.get(index as usize).map(|c| c.to_vec()).unwrap_or_default();
        match edit % 4 {
            1 if !bytes.is_empty() => {
                let at = usize::from(edit) % bytes.len();
                bytes[at] ^= 0x80;
            }
            2 => bytes.push(edit),
            3 => {
                bytes.pop();
            }
            _ => {}
        }
        let good = chunks.get(index as usize).is_some_and(|c| **c == bytes[..]);
        let verdict = any_order.check_chunk(index, &bytes);
        assert_eq!(verdict == ChunkVerdict::Accepted, good, "chunk {index}: {verdict:?}");
        if good {
            accepted[index as usize] = true;
        }
    }
    let missing: Vec<u32> = (0..count as u32).filter(|&i| !accepted[i as usize]).collect();
    assert_eq!(any_order.missing().collect::<Vec<_>>(), missing);
    assert_eq!(any_order.next_missing(), missing.first().copied());
    assert_eq!(any_order.finish().is_ok(), missing.is_empty());

    // The image in order, in arbitrary pieces, maybe with a byte changed or one more.
    let mut stream = image.to_vec();
    let flip = take(&mut ops);
    match flip % 4 {
        1 if !stream.is_empty() => {
            let at = usize::from(take(&mut ops)) * 17 % stream.len();
            stream[at] ^= flip | 1;
        }
        2 => stream.push(flip),
        3 => {
            stream.pop();
        }
        _ => {}
    }
    let mut sequential = SequentialChunks::new(verified, &table[..]);
    let mut rest = &stream[..];
    let mut refused_at = None;
    while !rest.is_empty() {
        let (piece, after) = rest.split_at((usize::from(take(&mut ops)) * 7).min(rest.len()).max(1));
        if sequential.feed(piece).is_err() {
            refused_at = Some(sequential.position() as usize);
            break;
        }
        rest = after;
    }
    let first_bad = stream.iter().zip(image).position(|(a, b)| a != b);
    match first_bad {
        Some(bad) => assert_eq!(refused_at, Some(((bad / chunk_size + 1) * chunk_size).min(image.len()))),
        None if stream.len() > image.len() => assert_eq!(refused_at, Some(image.len())),
        None => assert_eq!(refused_at, None),
    }
    assert_eq!(sequential.finish().is_ok(), stream == image);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => arbitrary_envelope(rest),
        1 => edited_manifest(rest),
        _ => chunked_image(rest),
    }
});
