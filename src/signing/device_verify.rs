//! What `nowatch-ota verify` checks, through the very verifier a watch runs
//! (`nowatch-ota-watch`): the manifest as served, then, given the chunk table, the table and
//! each chunk (and a patch's output chunk by chunk as the applier produces it), and the image
//! whole. The first check that fails is the error, named as README's list names it, with the
//! details a person needs (the verifier itself only says which check and why, in a few words).

use std::io::{Read, Write};
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use nowatch_ota_watch::{
    ChannelFacts, ChunkVerdict, DeviceFacts, ImageCheck, ImageDigest, Manifest, Rejection, SequentialChunks,
    TableCheck, TrustedKey, VerifiedTable, Version, bitmap_len, verify_manifest,
};

use super::offline::hash_file;
use super::{DEVICE_CHECKS, Device, ManifestBody, ManifestEnvelope, check_body};
use crate::delta::Applier;

/// The files a device check reads.
pub struct Inputs<'a> {
    pub manifest: &'a Path,
    /// The image to check; with `delta`, where the image the patch gives is written first.
    pub image: &'a Path,
    /// The chunk table (`GET /v1/firmware/{id}/chunks`), for a chunk-by-chunk check.
    pub chunks: Option<&'a Path>,
    /// A patch and the image it starts from.
    pub delta: Option<(&'a Path, &'a Path)>,
}

/// What passed: the manifest's body, and how many chunks were checked one by one.
pub struct Verified {
    pub body: ManifestBody,
    /// The file was not the manifest's bytes as served (a tool re-serialised its JSON): it was
    /// checked in the served form, but a watch fed the file as it stands refuses it.
    pub reserialised: bool,
    pub chunks_checked: Option<u32>,
    /// Bytes the patch gave, with `delta`.
    pub delta_written: Option<u64>,
}

pub async fn verify(inputs: &Inputs<'_>, keys: &[VerifyingKey], device: &Device) -> anyhow::Result<Verified> {
    let raw =
        std::fs::read(inputs.manifest).map_err(|e| anyhow::anyhow!("{}: {e}", inputs.manifest.display()))?;
    let envelope: ManifestEnvelope = serde_json::from_slice(&raw)
        .map_err(|e| anyhow::anyhow!("{}: not a manifest envelope: {e}", inputs.manifest.display()))?;
    // A file a tool wrote back after parsing it (whitespace, key order) is put back in the form
    // the service serves, whose `signed` is the canonical JSON the signature covers.
    let served = envelope.to_served_json()?;
    // Read before the signature is checked only to stand in for facts the device did not give,
    // whose checks are then skipped; nothing else is taken from it until the verifier passes it.
    let unverified: Option<ManifestBody> = serde_json::from_value(envelope.signed.clone()).ok();
    let facts = Facts::new(device, unverified.as_ref());
    let trusted: Vec<TrustedKey> = keys.iter().map(|k| TrustedKey::new(k.to_bytes())).collect();
    let order = facts.order();
    let manifest = verify_manifest(served.as_bytes(), &trusted, &facts.device(&order)?, now_unix())
        .map_err(|r| explain(r, unverified.as_ref(), device))?;
    // The verifier passed the very bytes this body was read from.
    let body = unverified.ok_or_else(|| anyhow::anyhow!("type: signed is not a manifest body"))?;
    let table = match inputs.chunks {
        Some(path) => Some(read_table(&manifest, path)?),
        None => None,
    };
    let delta_written = match inputs.delta {
        Some((patch, from)) => {
            let table = table.as_ref().map(|(verified, entries)| (*verified, entries.as_slice()));
            Some(apply_delta(from, patch, inputs.image, table)?)
        }
        None => None,
    };
    let chunks_checked = match table {
        Some((verified, entries)) => Some(check_chunks(verified, &entries, inputs.image)?),
        None => None,
    };
    check_whole(&manifest, inputs.image).await?;
    let reserialised = raw.trim_ascii() != served.as_bytes();
    Ok(Verified { body, reserialised, chunks_checked, delta_written })
}

/// The device's facts as the verifier takes them: one it was not given is taken from the
/// manifest, so its check passes (is skipped), as `Device` says of a fact left out.
struct Facts {
    hardware: String,
    current: String,
    channel: Option<(String, Vec<String>)>,
}

impl Facts {
    fn new(device: &Device, unverified: Option<&ManifestBody>) -> Self {
        let hardware =
            device.hardware.clone().or_else(|| unverified.and_then(|b| b.hardware.first().cloned()));
        // The lowest version there is, unless the release needs a version to install from.
        let lowest =
            || unverified.and_then(|b| b.min_from_version.clone()).unwrap_or_else(|| "0.0.0-0".into());
        let current = device.current_version.as_ref().map_or_else(lowest, |v| v.to_string());
        Self { hardware: hardware.unwrap_or_default(), current, channel: device.channel.clone() }
    }

    /// The facts as the verifier takes them; `order` is the channel order as `&str`s.
    fn device<'d>(&'d self, order: &'d [&'d str]) -> anyhow::Result<DeviceFacts<'d>> {
        Ok(DeviceFacts {
            hardware: &self.hardware,
            current_version: Version::parse(&self.current)
                .map_err(|e| anyhow::anyhow!("--current-version {}: {e}", self.current))?,
            channel: self.channel.as_ref().map(|(channel, _)| ChannelFacts { channel, order }),
            floor: None,
        })
    }

    fn order(&self) -> Vec<&str> {
        self.channel.as_ref().map(|(_, order)| order.iter().map(String::as_str).collect()).unwrap_or_default()
    }
}

/// The verifier's rejection, with the details the body checks can give.
fn explain(rejection: Rejection, unverified: Option<&ManifestBody>, device: &Device) -> anyhow::Error {
    let name = rejection.check.name();
    let detail = DEVICE_CHECKS
        .iter()
        .find(|c| c.name() == name)
        .zip(unverified)
        .and_then(|(check, body)| check_body(*check, body, device).err());
    anyhow::anyhow!("{name}: {}", detail.unwrap_or_else(|| rejection.reason.to_owned()))
}

fn now_unix() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default()
}

/// `chunk_table`: the table file, checked against the manifest; with its entries.
fn read_table(manifest: &Manifest<'_>, path: &Path) -> anyhow::Result<(VerifiedTable, Vec<u8>)> {
    let entries = std::fs::read(path).map_err(|e| anyhow::anyhow!("--chunks {}: {e}", path.display()))?;
    let mut check = TableCheck::new(manifest).map_err(|r| anyhow::anyhow!("{r}"))?;
    check.feed(&entries);
    let verified = check.finish().map_err(|r| anyhow::anyhow!("{r}"))?;
    Ok((verified, entries))
}

/// `chunk`: every chunk of the image file against its entry; how many.
fn check_chunks(table: VerifiedTable, entries: &[u8], image: &Path) -> anyhow::Result<u32> {
    let mut file = std::fs::File::open(image).map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
    let count = table.spec().count;
    let size = usize::try_from(table.spec().chunk_size)?;
    let mut bitmap = vec![0u8; bitmap_len(count)];
    let mut check = ImageCheck::new(table, entries, &mut bitmap).map_err(|r| anyhow::anyhow!("{r}"))?;
    let mut chunk = vec![0u8; size];
    for index in 0..count {
        let len = check.table().chunk_len(index).map_or(0, |l| l as usize);
        file.read_exact(&mut chunk[..len])
            .map_err(|_| anyhow::anyhow!("chunk: chunk {index}: the image ends early"))?;
        if let ChunkVerdict::Rejected(r) = check.check_chunk(index, &chunk[..len]) {
            anyhow::bail!("chunk: chunk {index} (bytes {}..): {}", u64::from(index) * size as u64, r.reason);
        }
    }
    check.finish().map_err(|r| anyhow::anyhow!("{r}"))?;
    Ok(count)
}

/// `image`: size and SHA-256 of the whole file.
async fn check_whole(manifest: &Manifest<'_>, image: &Path) -> anyhow::Result<()> {
    let mut digest = ImageDigest::new(manifest);
    let mut file = std::fs::File::open(image).map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut fed = Ok(());
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 || fed.is_err() {
            break;
        }
        fed = digest.feed(&buf[..n]);
    }
    if fed.and_then(|()| digest.finish().map(|_| ())).is_ok() {
        return Ok(());
    }
    let (size, sha256) = hash_file(image).await?;
    anyhow::ensure!(size == manifest.size, "image: {size} bytes, the manifest says {}", manifest.size);
    anyhow::bail!("image: SHA-256 {sha256} differs from the manifest's {}", hex::encode(manifest.sha256))
}

/// Applies `patch` to the image `from` as a watch does (4 KiB of patch at a time, a 256-byte
/// window), writing the result to the new file `out`, and with a verified table checks each
/// output chunk as the applier produces it (`chunk`: a bad patch is refused at its first bad
/// chunk); removes `out` if the patch is refused. The bytes written.
fn apply_delta(
    from: &Path,
    patch: &Path,
    out: &Path,
    table: Option<(VerifiedTable, &[u8])>,
) -> anyhow::Result<u64> {
    let old = std::fs::read(from).map_err(|e| anyhow::anyhow!("--from {}: {e}", from.display()))?;
    let mut patch_file =
        std::fs::File::open(patch).map_err(|e| anyhow::anyhow!("--delta {}: {e}", patch.display()))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| anyhow::anyhow!("--image {}: {e}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut applier = Applier::<256>::new();
    let mut sequential = table.map(|(verified, entries)| SequentialChunks::new(verified, entries));
    let mut refused = None;
    let mut applied = || -> anyhow::Result<u64> {
        let mut buf = [0u8; 4096];
        loop {
            let n = patch_file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let mut sink = |bytes: &[u8]| -> std::io::Result<()> {
                if let Some(check) = sequential.as_mut()
                    && let Err(r) = check.feed(bytes)
                {
                    refused = Some(r);
                    return Err(std::io::Error::other(r.reason));
                }
                writer.write_all(bytes)
            };
            applier.push(&buf[..n], &mut old.as_slice(), &mut sink)?;
        }
        let size = applier.finish()?;
        if let Some(check) = sequential.take() {
            check.finish().map_err(|r| anyhow::anyhow!("{r}"))?;
        }
        writer.flush()?;
        Ok(size)
    };
    let result = applied().map_err(|e| match refused {
        Some(r) => anyhow::anyhow!("{r} (in the patch's output)"),
        None => anyhow::anyhow!("delta: {e}"),
    });
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}
