//! The `nowatch-ota` command: `serve` (the default), `migrate`, `keygen`, `sign`, `verify`,
//! `root`, `publish`, `rollout`, `dev-token`. Each is a few lines over the library.

mod root;
mod verify;

use std::path::PathBuf;

use actix_web::rt::{System, SystemRunner};
use clap::{Args, Parser, Subcommand, ValueEnum};

use self::root::RootCommand;
use self::verify::VerifyArgs;
use crate::client::{Client, PublishArgs};
use crate::config::Settings;
use crate::signing::offline;
use crate::startup::Application;

#[derive(Parser)]
#[command(name = "nowatch-ota", version, about = "NOWATCH firmware OTA service")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
    Verify(VerifyArgs),
    /// The offline root of trust: make, sign and check root documents.
    Root {
        #[command(subcommand)]
        command: RootCommand,
    },
    Publish(PublishCommand),
    /// Show or steer a rollout.
    Rollout {
        action: RolloutAction,
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

/// Upload an image and publish it to a channel (exit 2: refused by the server, 3: server failed).
#[derive(Args)]
pub struct PublishCommand {
    #[arg(long, env = "NOWATCH_OTA_SERVER")]
    pub server: String,
    #[arg(long, env = "NOWATCH_OTA_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long)]
    pub file: PathBuf,
    #[arg(long)]
    pub version: String,
    /// Repeatable, or comma-separated.
    #[arg(long, required = true, value_delimiter = ',')]
    pub hardware: Vec<String>,
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Stage percents, e.g. 1,10,50,100; default: everyone at once.
    #[arg(long, value_delimiter = ',')]
    pub stages: Vec<f64>,
    /// Minimum seconds per stage before it advances by itself (all but the last).
    #[arg(long, default_value_t = 3600)]
    pub stage_duration: u64,
    #[arg(long)]
    pub notes: Option<String>,
    /// Base64 release signature (see `sign`).
    #[arg(long)]
    pub release_signature: Option<String>,
}

/// What `rollout` does with a rollout.
#[derive(Clone, Copy, ValueEnum)]
pub enum RolloutAction {
    Status,
    Pause,
    Resume,
    Advance,
    Abort,
}

impl RolloutAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Advance => "advance",
            Self::Abort => "abort",
        }
    }
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        let runtime = System::new();
        match self.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(&runtime),
            Command::Migrate => {
                let settings = Settings::load()?;
                runtime.block_on(async {
                    crate::db::migrate(&crate::db::connect(&settings.database).await?).await
                })?;
                println!("migrations applied");
                Ok(())
            }
            Command::Keygen { out } => {
                crate::signing::write_new_key(&out, &crate::signing::generate_pem()?)?;
                println!("wrote {}", out.display());
                Ok(())
            }
            Command::Sign { key, image } => {
                println!("{}", runtime.block_on(offline::sign_image(&key, &image))?);
                Ok(())
            }
            Command::Verify(args) => args.run(&runtime),
            Command::Root { command } => command.run(),
            Command::Publish(args) => args.run(&runtime),
            Command::Rollout { action, id, server, token } => {
                let client = Client::new(&server, &token)?;
                let rollout = runtime.block_on(client.rollout(action.as_str(), &id))?;
                println!("{}", serde_json::to_string_pretty(&rollout)?);
                Ok(())
            }
            Command::DevToken { admin, sub, ttl } => {
                let settings = Settings::load()?;
                println!("{}", crate::auth::mint_dev_token(&settings.auth, &sub, admin, ttl)?);
                Ok(())
            }
        }
    }
}

fn serve(runtime: &SystemRunner) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _log_writer = crate::telemetry::init(&settings.log)?;
    runtime.block_on(async {
        let app = Application::build(settings).await?;
        tracing::info!(port = app.port(), "nowatch-ota listening");
        Ok(app.run_until_stopped().await?)
    })
}

impl PublishCommand {
    fn run(self, runtime: &SystemRunner) -> anyhow::Result<()> {
        let args = PublishArgs {
            file: &self.file,
            version: &self.version,
            hardware: &self.hardware,
            channel: &self.channel,
            stages: &self.stages,
            stage_duration_s: self.stage_duration,
            release_notes: self.notes.as_deref(),
            release_signature: self.release_signature.as_deref(),
        };
        let client = Client::new(&self.server, &self.token)?;
        let published = runtime.block_on(client.publish(&args))?;
        println!("{}", serde_json::to_string_pretty(&published)?);
        Ok(())
    }
}
