//! `nowatch-ota verify`: a manifest and an image checked as a device would, by the verifier a
//! watch runs (`signing::device_verify`).

use std::path::PathBuf;

use actix_web::rt::SystemRunner;
use clap::Args;

use crate::config::Settings;
use crate::domain::{HardwareId, Version};
use crate::signing::Device;
use crate::signing::device_verify::{self, Inputs};
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
    /// The release's chunk table (GET /v1/firmware/{id}/chunks): checked against the manifest's
    /// chunk_table_sha256, then each chunk of the image (and of a patch's output as it is
    /// produced) against it, as a watch fed by a phone checks them.
    #[arg(long)]
    pub chunks: Option<PathBuf>,
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
        let inputs = Inputs {
            manifest: &self.manifest,
            image: &self.image,
            chunks: self.chunks.as_deref(),
            delta: self.delta.as_deref().zip(self.from.as_deref()),
        };
        let verified = runtime.block_on(device_verify::verify(&inputs, &keys, &device))?;
        if let Some(written) = verified.delta_written {
            println!("delta: {written} bytes written to {}", self.image.display());
        }
        if verified.reserialised {
            eprintln!(
                "note: {} is not the manifest as served (its JSON was re-serialised); it was checked in \
                 the served form, but a watch fed this file as it stands refuses it: relay the bytes the \
                 service sent",
                self.manifest.display()
            );
        }
        let body = verified.body;
        let hardware = body.hardware.join(",");
        println!(
            "OK: {} {} for {hardware}, {} bytes, sha256 {}",
            body.firmware_id, body.version, body.size, body.sha256
        );
        if let Some(chunks) = verified.chunks_checked {
            println!(
                "chunks: {chunks} of {} bytes, each checked against the signed table",
                body.chunk_size.unwrap_or(0)
            );
        }
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
