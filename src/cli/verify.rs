//! `nowatch-ota verify`: a manifest and an image checked as a device would.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use actix_web::rt::SystemRunner;
use clap::Args;

use crate::config::Settings;
use crate::delta::Applier;
use crate::domain::{HardwareId, Version};
use crate::signing::Device;
use crate::signing::offline;
use crate::signing::root_tool::{self, RootSources};

/// Check a manifest and an image as a device would; exit 1 if anything fails.
#[derive(Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub manifest: PathBuf,
    /// The image to check; with --delta, where the image the patch gives is written (a new
    /// file), then checked.
    #[arg(long)]
    pub image: PathBuf,
    /// A patch (the update check's `delta`) to apply to --from first, as a watch does, with
    /// the streaming applier of `nowatch_ota_core::delta`.
    #[arg(long, requires = "from")]
    pub delta: Option<PathBuf>,
    /// The image the device runs, which --delta starts from.
    #[arg(long, requires = "delta")]
    pub from: Option<PathBuf>,
    /// Trusted key: base64 of the 32 raw bytes, or a PEM file. Repeatable. Or use --root.
    #[arg(long = "public-key", required_unless_present = "root", conflicts_with = "root")]
    pub public_keys: Vec<String>,
    /// The pinned root document (the device's built-in trust): the manifest's key must be
    /// in the newest root reached from it, unexpired and not revoked.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// A newer root document to walk to from the pinned one. Repeatable.
    #[arg(long = "root-update", requires = "root")]
    pub root_updates: Vec<PathBuf>,
    /// Fetch newer root documents from this service: GET /v1/firmware/root (the newest),
    /// then /v1/firmware/root/N for each version between.
    #[arg(long = "root-server", requires = "root")]
    pub root_server: Option<String>,
    /// Token for --root-server (not needed with auth.public_downloads).
    #[arg(long, env = "NOWATCH_OTA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long)]
    pub hardware: Option<String>,
    #[arg(long = "current-version")]
    pub current_version: Option<String>,
    /// The device's channel: the manifest's must be it or a more stable one.
    #[arg(long)]
    pub channel: Option<String>,
    /// The channels, most stable first, comma-separated (default: firmware.channels' default).
    #[arg(long)]
    pub channels: Option<String>,
}

impl VerifyArgs {
    pub fn run(self, runtime: &SystemRunner) -> anyhow::Result<()> {
        // With a pinned root, the keys are those of the newest root reached from it.
        let (keys, reached) = match &self.root {
            Some(pinned) => {
                let sources = RootSources {
                    pinned,
                    updates: &self.root_updates,
                    server: self.root_server.as_deref(),
                    token: self.token.as_deref(),
                };
                let trusted = runtime.block_on(root_tool::walk(&sources))?;
                (root_tool::manifest_keys(&trusted, &self.manifest)?, Some(trusted.version()))
            }
            None => {
                let keys = self.public_keys.iter().map(|k| offline::parse_public_key(k));
                (keys.collect::<Result<Vec<_>, _>>()?, None)
            }
        };
        let device = self.device()?;
        if let (Some(patch), Some(from)) = (&self.delta, &self.from) {
            let written = apply_delta(from, patch, &self.image)?;
            println!("delta: {written} bytes written to {}", self.image.display());
        }
        let body = runtime.block_on(offline::verify_files(&self.manifest, &self.image, &keys, &device))?;
        let hardware = body.hardware.join(",");
        println!(
            "OK: {} {} for {hardware}, {} bytes, sha256 {}",
            body.firmware_id, body.version, body.size, body.sha256
        );
        if let Some(version) = reached {
            println!("root: version {version}");
        }
        Ok(())
    }

    /// The device the manifest is checked for: what it was told of it.
    fn device(&self) -> anyhow::Result<Device> {
        let channels = match &self.channels {
            Some(list) => list.split(',').map(|c| c.trim().to_owned()).collect(),
            None => Settings::load_from(Default::default())?.firmware.channels,
        };
        if let Some(channel) = &self.channel {
            anyhow::ensure!(channels.contains(channel), "--channel: {channel} is not one of {channels:?}");
        }
        Ok(Device {
            hardware: self
                .hardware
                .as_deref()
                .map(|h| HardwareId::parse(h).map(|h| h.as_str().to_owned()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--hardware: {e}"))?,
            current_version: self
                .current_version
                .as_deref()
                .map(|v| Version::parse(v).map(|v| v.semver().clone()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--current-version: {e}"))?,
            channel: self.channel.clone().map(|c| (c, channels)),
        })
    }
}

/// Applies `patch` to the image `from` as a watch does (4 KiB of patch at a time, a 256-byte
/// window), writing the result to the new file `out`; removes it if the patch is refused.
fn apply_delta(from: &Path, patch: &Path, out: &Path) -> anyhow::Result<u64> {
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
    let mut applied = || -> anyhow::Result<u64> {
        let mut buf = [0u8; 4096];
        loop {
            let n = patch_file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            applier.push(&buf[..n], &mut old.as_slice(), &mut |bytes: &[u8]| writer.write_all(bytes))?;
        }
        let size = applier.finish()?;
        writer.flush()?;
        Ok(size)
    };
    let result = applied().map_err(|e| anyhow::anyhow!("delta: {e}"));
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}
