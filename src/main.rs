//! The `nowatch-ota` command: `serve` (the default), `migrate`, `keygen`, `sign`, `verify`,
//! `root`, `publish`, `rollout`, `dev-token`. Each is a few lines over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nowatch_ota::client::{Client, ClientError, PublishArgs};
use nowatch_ota::config::Settings;
use nowatch_ota::domain::{HardwareId, Version};
use nowatch_ota::signing::Device;
use nowatch_ota::signing::offline;
use nowatch_ota::signing::root_tool::{self, NewRoot, RootSources};
use nowatch_ota::startup::Application;

/// mimalloc rather than glibc's malloc: a proxied request makes dozens of small short-lived
/// allocations (headers, futures, log fields), and glibc's were about 6 % of its CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "nowatch-ota", version, about = "NOWATCH firmware OTA service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write a new ed25519 signing key (PKCS#8 PEM).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the release signature (base64) of an image, for `release_signature` on upload.
    Sign {
        #[arg(long)]
        key: PathBuf,
        image: PathBuf,
    },
    /// Check a manifest and an image as a device would; exit 1 if anything fails.
    Verify {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        image: PathBuf,
        /// Trusted key: base64 of the 32 raw bytes, or a PEM file. Repeatable. Or use --root.
        #[arg(long = "public-key", required_unless_present = "root", conflicts_with = "root")]
        public_keys: Vec<String>,
        /// The pinned root document (the device's built-in trust): the manifest's key must be
        /// in the newest root reached from it, unexpired and not revoked.
        #[arg(long)]
        root: Option<PathBuf>,
        /// A newer root document to walk to from the pinned one. Repeatable.
        #[arg(long = "root-update", requires = "root")]
        root_updates: Vec<PathBuf>,
        /// Fetch newer root documents from this service: GET /v1/firmware/root (the newest),
        /// then /v1/firmware/root/N for each version between.
        #[arg(long = "root-server", requires = "root")]
        root_server: Option<String>,
        /// Token for --root-server (not needed with auth.public_downloads).
        #[arg(long, env = "NOWATCH_OTA_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        hardware: Option<String>,
        #[arg(long = "current-version")]
        current_version: Option<String>,
        /// The device's channel: the manifest's must be it or a more stable one.
        #[arg(long)]
        channel: Option<String>,
        /// The channels, most stable first, comma-separated (default: firmware.channels' default).
        #[arg(long)]
        channels: Option<String>,
    },
    /// The offline root of trust: make, sign and check root documents.
    Root {
        #[command(subcommand)]
        command: RootCommand,
    },
    /// Upload an image and publish it to a channel (exit 2: refused by the server, 3: server failed).
    Publish {
        #[arg(long, env = "NOWATCH_OTA_SERVER")]
        server: String,
        #[arg(long, env = "NOWATCH_OTA_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        version: String,
        /// Repeatable, or comma-separated.
        #[arg(long, required = true, value_delimiter = ',')]
        hardware: Vec<String>,
        #[arg(long, default_value = "stable")]
        channel: String,
        /// Stage percents, e.g. 1,10,50,100; default: everyone at once.
        #[arg(long, value_delimiter = ',')]
        stages: Vec<f64>,
        /// Minimum seconds per stage before it advances by itself (all but the last).
        #[arg(long, default_value_t = 3600)]
        stage_duration: u64,
        #[arg(long)]
        notes: Option<String>,
        /// Base64 release signature (see `sign`).
        #[arg(long)]
        release_signature: Option<String>,
    },
    /// Show or steer a rollout: status, pause, resume, advance, abort.
    Rollout {
        #[arg(value_parser = ["status", "pause", "resume", "advance", "abort"])]
        action: String,
        id: String,
        #[arg(long, env = "NOWATCH_OTA_SERVER")]
        server: String,
        #[arg(long, env = "NOWATCH_OTA_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Print a JWT signed with the configured HS secret, for trying the API locally.
    DevToken {
        #[arg(long)]
        admin: bool,
        #[arg(long, default_value = "dev-user")]
        sub: String,
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[derive(Subcommand)]
enum RootCommand {
    /// Write the next root document, unsigned: version 1 from the arguments, or the version
    /// after --from with its keys carried forward and changed as asked.
    New {
        #[arg(long)]
        out: PathBuf,
        /// The current newest root document; the new one is its next version.
        #[arg(long)]
        from: Option<PathBuf>,
        /// A root key (public PEM, private PEM or base64). Repeatable; replaces --from's set.
        #[arg(long = "root-key")]
        root_keys: Vec<String>,
        /// Distinct root keys that must sign (default: --from's).
        #[arg(long)]
        threshold: Option<u32>,
        /// An online manifest-signing key. Repeatable; replaces --from's set, whose keys left
        /// out become retired.
        #[arg(long = "manifest-key")]
        manifest_keys: Vec<String>,
        /// Stop trusting a retired key (key or key id). Repeatable.
        #[arg(long = "drop-retired")]
        drop_retired: Vec<String>,
        /// Distrust a key for good (key or key id). Repeatable.
        #[arg(long)]
        revoke: Vec<String>,
        /// RFC 3339 or YYYY-MM-DD (UTC); default: a year from now.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Add a root key's signature to a root document, in place.
    Sign {
        #[arg(long)]
        key: PathBuf,
        file: PathBuf,
    },
    /// Check a directory of root documents (1.root.json, 2.root.json, ...) as the service will.
    Check { dir: PathBuf },
    /// Print the public half of a key as PEM (for keys/root/).
    Pubkey { key: String },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nowatch-ota: {e:#}");
            match e.downcast_ref::<ClientError>() {
                Some(client) => ExitCode::from(client.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = actix_web::rt::System::new();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let settings = Settings::load()?;
            let _log_writer = nowatch_ota::telemetry::init(&settings.log)?;
            runtime.block_on(async {
                let app = Application::build(settings).await?;
                tracing::info!(port = app.port(), "nowatch-ota listening");
                Ok(app.run_until_stopped().await?)
            })
        }
        Command::Migrate => {
            let settings = Settings::load()?;
            runtime.block_on(async {
                nowatch_ota::db::migrate(&nowatch_ota::db::connect(&settings.database).await?).await
            })?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keygen { out } => {
            nowatch_ota::signing::write_new_key(&out, &nowatch_ota::signing::generate_pem()?)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Sign { key, image } => {
            println!("{}", runtime.block_on(offline::sign_image(&key, &image))?);
            Ok(())
        }
        Command::Verify {
            manifest,
            image,
            public_keys,
            root,
            root_updates,
            root_server,
            token,
            hardware,
            current_version,
            channel,
            channels,
        } => {
            // With a pinned root, the keys are those of the newest root reached from it.
            let (keys, reached) = match &root {
                Some(pinned) => {
                    let sources = RootSources {
                        pinned,
                        updates: &root_updates,
                        server: root_server.as_deref(),
                        token: token.as_deref(),
                    };
                    let trusted = runtime.block_on(root_tool::walk(&sources))?;
                    (root_tool::manifest_keys(&trusted, &manifest)?, Some(trusted.version()))
                }
                None => (
                    public_keys
                        .iter()
                        .map(|k| offline::parse_public_key(k))
                        .collect::<Result<Vec<_>, _>>()?,
                    None,
                ),
            };
            let channels = match channels {
                Some(list) => list.split(',').map(|c| c.trim().to_owned()).collect(),
                None => Settings::load_from(Default::default())?.firmware.channels,
            };
            if let Some(channel) = &channel {
                anyhow::ensure!(
                    channels.contains(channel),
                    "--channel: {channel} is not one of {channels:?}"
                );
            }
            let device = Device {
                hardware: hardware
                    .map(|h| HardwareId::parse(&h).map(|h| h.as_str().to_owned()))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--hardware: {e}"))?,
                current_version: current_version
                    .map(|v| Version::parse(&v).map(|v| v.semver().clone()))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--current-version: {e}"))?,
                channel: channel.map(|c| (c, channels)),
            };
            let body = runtime.block_on(offline::verify_files(&manifest, &image, &keys, &device))?;
            println!(
                "OK: {} {} for {}, {} bytes, sha256 {}",
                body.firmware_id,
                body.version,
                body.hardware.join(","),
                body.size,
                body.sha256
            );
            if let Some(version) = reached {
                println!("root: version {version}");
            }
            Ok(())
        }
        Command::Root { command } => root_command(command),
        Command::Publish {
            server,
            token,
            file,
            version,
            hardware,
            channel,
            stages,
            stage_duration,
            notes,
            release_signature,
        } => {
            let args = PublishArgs {
                file: &file,
                version: &version,
                hardware: &hardware,
                channel: &channel,
                stages: &stages,
                stage_duration_s: stage_duration,
                release_notes: notes.as_deref(),
                release_signature: release_signature.as_deref(),
            };
            let published = runtime.block_on(async { Client::new(&server, &token)?.publish(&args).await })?;
            println!("{}", serde_json::to_string_pretty(&published)?);
            Ok(())
        }
        Command::Rollout { action, id, server, token } => {
            let rollout =
                runtime.block_on(async { Client::new(&server, &token)?.rollout(&action, &id).await })?;
            println!("{}", serde_json::to_string_pretty(&rollout)?);
            Ok(())
        }
        Command::DevToken { admin, sub, ttl } => {
            let settings = Settings::load()?;
            println!("{}", nowatch_ota::auth::mint_dev_token(&settings.auth, &sub, admin, ttl)?);
            Ok(())
        }
    }
}

fn root_command(command: RootCommand) -> anyhow::Result<()> {
    match command {
        RootCommand::New {
            out,
            from,
            root_keys,
            threshold,
            manifest_keys,
            drop_retired,
            revoke,
            expires,
        } => {
            let envelope = root_tool::new_root(&NewRoot {
                from: from.as_deref(),
                root_keys: &root_keys,
                threshold,
                manifest_keys: &manifest_keys,
                drop_retired: &drop_retired,
                revoke: &revoke,
                expires: expires.as_deref(),
            })?;
            root_tool::write_new(&out, &envelope)?;
            let body = envelope.body()?;
            println!(
                "wrote {} (version {}, unsigned): sign it with `nowatch-ota root sign --key ROOT-KEY.pem {}` \
                 by {} of its root keys{}",
                out.display(),
                body.version,
                out.display(),
                body.threshold,
                if body.version > 1 { " and the threshold of the previous version's" } else { "" }
            );
            Ok(())
        }
        RootCommand::Sign { key, file } => {
            println!("{}", root_tool::sign_root(&file, &key)?);
            Ok(())
        }
        RootCommand::Check { dir } => {
            println!("{}", root_tool::check_dir(&dir)?);
            Ok(())
        }
        RootCommand::Pubkey { key } => {
            print!("{}", root_tool::public_pem(&key)?);
            Ok(())
        }
    }
}
