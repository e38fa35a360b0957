//! The signed root documents this service serves (`GET /v1/firmware/root`, `.../root/{version}`):
//! every version, read once at start-up from `signing.root_dir` (or the built-in DEV ONLY chain)
//! and checked the way a device checks them, so a service never serves a chain its devices
//! would refuse. The rules are `nowatch-ota-core`'s ([`crate::signing::root`]).

use std::path::Path;
use std::sync::Arc;

use super::{ManifestSigner, Root, TrustedRoot, verify_chain};

/// DEV ONLY: the built-in root chain, used when `signing.root_dir` is empty. Its root keys'
/// private halves (`keys/dev-root-*.pem`) are public in this repository.
pub const DEV_ROOTS: &[&str] = &[include_str!("../../keys/root/1.root.json")];

/// Every version of the root, oldest first (index = version - 1), as stored.
#[derive(Debug, Clone)]
pub struct RootStore {
    documents: Vec<Arc<str>>,
    newest: TrustedRoot,
}

impl RootStore {
    /// Reads and checks the chain `documents` (version 1 first). The errors say which version
    /// is wrong and why.
    pub fn from_documents(documents: Vec<(String, String)>) -> anyhow::Result<Self> {
        let mut roots = Vec::with_capacity(documents.len());
        for (i, (name, text)) in documents.iter().enumerate() {
            let root = Root::parse(text.as_bytes()).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            let expected = i as u64 + 1;
            anyhow::ensure!(
                root.version() == expected,
                "{name}: holds root version {}, expected version {expected} (versions run from 1 without gaps)",
                root.version()
            );
            roots.push(root);
        }
        let newest = verify_chain(roots).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self { documents: documents.into_iter().map(|(_, text)| text.into()).collect(), newest })
    }

    /// Reads `dir`'s `N.root.json` files; other files are ignored.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Self> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
        let mut found = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let Some(version) = name.strip_suffix(".root.json").and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            found.push((version, path.display().to_string(), text));
        }
        anyhow::ensure!(!found.is_empty(), "{} holds no root documents (1.root.json, ...)", dir.display());
        found.sort_by_key(|(version, _, _)| *version);
        for (i, (version, _, _)) in found.iter().enumerate() {
            let expected = i as u64 + 1;
            anyhow::ensure!(
                *version == expected,
                "{}: no {expected}.root.json (versions run from 1 without gaps; a device walks every one)",
                dir.display()
            );
        }
        Self::from_documents(found.into_iter().map(|(_, name, text)| (name, text)).collect())
    }

    /// The chain the settings name, checked against the signing key: production refuses the
    /// built-in DEV ONLY chain, a newest root that does not list the signing key among its
    /// manifest keys, an expired one, and one whose root keys include a DEV ONLY key; elsewhere
    /// the last three are warnings, so a laptop with its own key still starts.
    pub fn load(root_dir: &Path, signer: &ManifestSigner, production: bool) -> anyhow::Result<Self> {
        let fail = |why: String| anyhow::anyhow!("`signing.root_dir`: {why}");
        let store = if root_dir.as_os_str().is_empty() {
            if production {
                return Err(fail(
                    "NOWATCH_OTA_ENV=production refuses the built-in DEV ONLY root; set the directory of \
                     your signed root documents, whose newest lists the signing key"
                        .into(),
                ));
            }
            Self::dev()?
        } else {
            Self::load_dir(root_dir).map_err(|e| fail(format!("{e:#}")))?
        };
        let newest = &store.newest;
        let mut problems = Vec::new();
        if !newest.lists_manifest_key(signer.key_id()) {
            problems.push(format!(
                "root version {} does not list the signing key {} (signing.key_file) among its manifest_keys: \
                 devices would refuse every manifest",
                newest.version(),
                signer.key_id()
            ));
        }
        if let Err(e) = newest.check_fresh(chrono::Utc::now()) {
            problems.push(format!("{e}: devices would trust no key"));
        }
        // Any version, not only the newest: the DEV ONLY keys' private halves are public, so a
        // chain that passes through a root they sign lets anyone sign the next version.
        let dev_keys: Vec<String> = Self::dev()?.newest.root().root_key_ids().map(str::to_owned).collect();
        if !root_dir.as_os_str().is_empty() {
            for document in &store.documents {
                let root = Root::parse(document.as_bytes()).map_err(|e| fail(format!("{e}")))?;
                if root.root_key_ids().any(|id| dev_keys.iter().any(|d| d == id)) {
                    problems.push(format!(
                        "root version {} has a DEV ONLY root key (keys/root/dev-root-*)",
                        root.version()
                    ));
                }
            }
        }
        match (problems.is_empty(), production) {
            (true, _) => {}
            (false, true) => return Err(fail(problems.join("; "))),
            (false, false) => {
                for problem in problems {
                    tracing::warn!("`signing.root_dir`: {problem}");
                }
            }
        }
        Ok(store)
    }

    /// The built-in DEV ONLY chain.
    pub fn dev() -> anyhow::Result<Self> {
        Self::from_documents(
            DEV_ROOTS
                .iter()
                .enumerate()
                .map(|(i, text)| (format!("built-in {}.root.json", i + 1), (*text).to_owned()))
                .collect(),
        )
    }

    /// The newest version's number.
    pub fn newest_version(&self) -> u64 {
        self.newest.version()
    }

    pub fn newest(&self) -> &TrustedRoot {
        &self.newest
    }

    /// The document of `version`, as stored.
    pub fn document(&self, version: u64) -> Option<&Arc<str>> {
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        self.documents.get(index)
    }
}
