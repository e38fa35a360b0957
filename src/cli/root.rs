//! `nowatch-ota root`: make, sign and check the offline root of trust.

use std::path::PathBuf;

use clap::Subcommand;

use crate::signing::root_tool::{self, NewRoot};

#[derive(Subcommand)]
pub enum RootCommand {
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

impl RootCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Self::New { out, from, root_keys, threshold, manifest_keys, drop_retired, revoke, expires } => {
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
            Self::Sign { key, file } => {
                println!("{}", root_tool::sign_root(&file, &key)?);
                Ok(())
            }
            Self::Check { dir } => {
                println!("{}", root_tool::check_dir(&dir)?);
                Ok(())
            }
            Self::Pubkey { key } => {
                print!("{}", root_tool::public_pem(&key)?);
                Ok(())
            }
        }
    }
}
