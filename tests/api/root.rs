//! The root of trust, end to end: roots made and signed offline with `nowatch-ota root`, served
//! by the service at `/v1/firmware/root[/{version}]`, and walked by `nowatch-ota verify --root`
//! as a device would, through rotations of the online key and of root keys, refusing roots
//! below their threshold, expired or rolled back, and manifests signed by a revoked key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use nowatch_ota::config::Settings;
use nowatch_ota::signing::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSigner, SPEC_VERSION, key_id,
};
use nowatch_ota::startup::Application;
use serde_json::Value;

use crate::helpers::{image_bytes, sha256_hex, spawn_app, spawn_app_with};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nowatch-ota")).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An offline key ceremony in a temp dir: keys by name (made by `keygen` when first named),
/// root documents made with `root new` and signed with `root sign`, and a device's files.
pub struct Ceremony {
    pub dir: tempfile::TempDir,
    image: PathBuf,
}

impl Ceremony {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fw.bin");
        std::fs::write(&image, image_bytes(7, 10_000)).unwrap();
        Self { dir, image }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The private key file of `name`.
    pub fn key(&self, name: &str) -> String {
        let path = self.path(&format!("{name}.pem"));
        if !path.exists() {
            let made = cli(&["keygen", "--out", path.to_str().unwrap()]);
            assert!(made.status.success(), "{}", stderr(&made));
        }
        path.display().to_string()
    }

    pub fn key_id(&self, name: &str) -> String {
        let key = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(self.key(name)).unwrap()).unwrap();
        key_id(&key.verifying_key())
    }

    /// `root new --out FILE` with `args`, where `@name` stands for key `name`'s file; then
    /// `root sign` by each of `signers`.
    pub fn root(&self, file: &str, args: &[&str], signers: &[&str]) -> PathBuf {
        let out = self.path(file);
        let mut full = vec!["root".to_owned(), "new".into(), "--out".into(), out.display().to_string()];
        for arg in args {
            full.push(match arg.strip_prefix('@') {
                Some(name) => self.key(name),
                None if arg.ends_with(".json") => self.path(arg).display().to_string(),
                None => (*arg).to_owned(),
            });
        }
        let made = cli(&full.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(made.status.success(), "root new {args:?}: {}", stderr(&made));
        self.sign(&out, signers);
        out
    }

    pub fn sign(&self, root: &Path, signers: &[&str]) {
        for signer in signers {
            let signed = cli(&["root", "sign", "--key", &self.key(signer), root.to_str().unwrap()]);
            assert!(signed.status.success(), "root sign by {signer}: {}", stderr(&signed));
        }
    }

    /// A manifest for the image, signed by the online key `signer`.
    pub fn manifest(&self, signer: &str) -> PathBuf {
        let key = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(self.key(signer)).unwrap()).unwrap();
        let bytes = std::fs::read(&self.image).unwrap();
        let now = Utc::now();
        let body = ManifestBody {
            kind: MANIFEST_TYPE.into(),
            spec_version: SPEC_VERSION.into(),
            firmware_id: uuid::Uuid::new_v4().to_string(),
            version: "2.0.0".into(),
            hardware: vec!["nw-s1".into()],
            channel: "stable".into(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            min_version: None,
            min_from_version: None,
            mandatory: false,
            issued_at: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            expires_at: (now + Duration::days(7)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            release_signature: None,
            chunk_size: None,
            chunk_table_sha256: None,
        };
        let envelope = ManifestEnvelope::sign(&body, &ManifestSigner::new(key, Vec::new())).unwrap();
        let path = self.path(&format!("manifest-{signer}.json"));
        std::fs::write(&path, serde_json::to_vec(&envelope).unwrap()).unwrap();
        path
    }

    /// `verify` of the image against `manifest`, pinned to `pinned`, with `extra` arguments.
    pub fn verify(&self, manifest: &Path, pinned: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "verify",
            "--manifest",
            manifest.to_str().unwrap(),
            "--image",
            self.image.to_str().unwrap(),
            "--root",
            pinned.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        cli(&args)
    }

    /// A directory holding the given root files as `1.root.json`, `2.root.json`, ...
    pub fn root_dir(&self, name: &str, roots: &[&Path]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, root) in roots.iter().enumerate() {
            std::fs::copy(root, dir.join(format!("{}.root.json", i + 1))).unwrap();
        }
        dir
    }
}

fn accepted(output: &Output, root_version: u64) {
    assert!(output.status.success(), "refused: {}", stderr(output));
    assert!(stdout(output).starts_with("OK:"), "{}", stdout(output));
    assert!(stdout(output).contains(&format!("root: version {root_version}")), "{}", stdout(output));
}

fn refused(output: &Output, because: &str) {
    assert_eq!(output.status.code(), Some(1), "not refused: {} {}", stdout(output), stderr(output));
    assert!(stderr(output).contains(because), "{:?} does not say {because:?}", stderr(output));
}

/// Version 1: root keys r1 and r2, both needed; manifests signed by k1.
fn first_root(c: &Ceremony) -> PathBuf {
    c.root(
        "v1.json",
        &["--root-key", "@r1", "--root-key", "@r2", "--threshold", "2", "--manifest-key", "@k1"],
        &["r1", "r2"],
    )
}

#[test]
fn verify_follows_a_rotation_of_the_online_manifest_key() {
    let c = Ceremony::new();
    let v1 = first_root(&c);
    let v2 = c.root("v2.json", &["--from", "v1.json", "--manifest-key", "@k2"], &["r1", "r2"]);
    let by_k2 = c.manifest("k2");
    refused(&c.verify(&by_k2, &v1, &[]), "is not a manifest key of root version 1");
    accepted(&c.verify(&by_k2, &v1, &["--root-update", v2.to_str().unwrap()]), 2);
    // The key it replaced is retired: the manifests it signed still verify.
    accepted(&c.verify(&c.manifest("k1"), &v1, &["--root-update", v2.to_str().unwrap()]), 2);
}

#[test]
fn verify_follows_a_rotation_of_a_root_key_and_then_trusts_only_the_new_set() {
    let c = Ceremony::new();
    let v1 = c.root(
        "v1.json",
        &[
            "--root-key",
            "@r1",
            "--root-key",
            "@r2",
            "--root-key",
            "@r3",
            "--threshold",
            "2",
            "--manifest-key",
            "@k1",
        ],
        &["r1", "r2"],
    );
    // r3 is replaced by r4: version 1's threshold (r1, r3) and version 2's own (r1, r4) sign.
    let v2 = c.root(
        "v2.json",
        &["--from", "v1.json", "--root-key", "@r1", "--root-key", "@r2", "--root-key", "@r4"],
        &["r1", "r3", "r4"],
    );
    let by_k2 = c.manifest("k2");
    let v3_by_removed_key =
        c.root("v3-bad.json", &["--from", "v2.json", "--manifest-key", "@k2"], &["r3", "r4"]);
    let walked = c.verify(
        &by_k2,
        &v1,
        &["--root-update", v2.to_str().unwrap(), "--root-update", v3_by_removed_key.to_str().unwrap()],
    );
    refused(&walked, "root version 3 has 1 valid signature(s) by root keys of version 2; it needs 2");
    let v3 = c.root("v3.json", &["--from", "v2.json", "--manifest-key", "@k2"], &["r2", "r4"]);
    let walked = c.verify(
        &by_k2,
        &v1,
        &["--root-update", v3.to_str().unwrap(), "--root-update", v2.to_str().unwrap()],
    );
    accepted(&walked, 3);
}

#[tokio::test]
async fn a_device_offline_across_two_rotations_catches_up_from_the_service() {
    let c = Ceremony::new();
    let v1 = first_root(&c);
    let v2 = c.root(
        "v2.json",
        &["--from", "v1.json", "--manifest-key", "@k2", "--root-key", "@r2", "--root-key", "@r3"],
        &["r1", "r2", "r3"],
    );
    let v3 = c.root("v3.json", &["--from", "v2.json", "--manifest-key", "@k3"], &["r2", "r3"]);
    let dir = c.root_dir("roots", &[&v1, &v2, &v3]);
    let checked = cli(&["root", "check", dir.to_str().unwrap()]);
    assert!(stdout(&checked).starts_with("OK: root versions 1 to 3"), "{}", stderr(&checked));
    let app = spawn_app_with(&[("NOWATCH_OTA__SIGNING__ROOT_DIR", dir.to_str().unwrap())]).await;

    let by_k3 = c.manifest("k3");
    let (token, image) = (app.user_token(), c.image.display().to_string());
    let pinned_only =
        ["verify", "--manifest", by_k3.to_str().unwrap(), "--image", &image, "--root", v1.to_str().unwrap()];
    let device =
        |args: Vec<&str>| tokio::process::Command::new(env!("CARGO_BIN_EXE_nowatch-ota")).args(args).output();
    refused(&device(pinned_only.to_vec()).await.unwrap(), "is not a manifest key of root version 1");
    let mut from_service = pinned_only.to_vec();
    from_service.extend(["--root-server", &app.address, "--token", &token]);
    accepted(&device(from_service).await.unwrap(), 3);
}

#[test]
fn verify_refuses_a_root_signed_below_the_threshold() {
    let c = Ceremony::new();
    let v1 = first_root(&c);
    let v2 = c.root("v2.json", &["--from", "v1.json", "--manifest-key", "@k2"], &["r1"]);
    let by_k2 = c.manifest("k2");
    let update = ["--root-update", v2.to_str().unwrap()];
    refused(
        &c.verify(&by_k2, &v1, &update),
        "root version 2 has 1 valid signature(s) by root keys of version 1; it needs 2",
    );
    c.sign(&v2, &["r2"]);
    accepted(&c.verify(&by_k2, &v1, &update), 2);
    // A pinned root must carry its own threshold too.
    let half = c.root(
        "half.json",
        &["--root-key", "@r1", "--root-key", "@r2", "--threshold", "2", "--manifest-key", "@k1"],
        &["r2"],
    );
    refused(&c.verify(&c.manifest("k1"), &half, &[]), "root version 1 has 1 valid signature(s)");
}

#[test]
fn verify_refuses_an_expired_root() {
    let c = Ceremony::new();
    let v1 = first_root(&c);
    let v2 = c.root("v2.json", &["--from", "v1.json", "--expires", "2026-01-01"], &["r1", "r2"]);
    let by_k1 = c.manifest("k1");
    accepted(&c.verify(&by_k1, &v1, &[]), 1);
    refused(
        &c.verify(&by_k1, &v1, &["--root-update", v2.to_str().unwrap()]),
        "root version 2 expired at 2026-01-01T00:00:00Z",
    );
    let dir = c.root_dir("roots", &[&v1, &v2]);
    let checked = cli(&["root", "check", dir.to_str().unwrap()]);
    assert!(stdout(&checked).contains("WARNING: root version 2 expired"), "{}", stdout(&checked));
}

#[test]
fn verify_refuses_a_rolled_back_root_version() {
    let c = Ceremony::new();
    let v1 = first_root(&c);
    let v2 = c.root("v2.json", &["--from", "v1.json", "--manifest-key", "@k2"], &["r1", "r2"]);
    let by_k2 = c.manifest("k2");
    accepted(&c.verify(&by_k2, &v2, &[]), 2);
    refused(
        &c.verify(&by_k2, &v2, &["--root-update", v1.to_str().unwrap()]),
        "root version 1 is not newer than the trusted version 2: a rollback",
    );
}

#[test]
fn verify_refuses_a_manifest_signed_by_a_revoked_key() {
    let c = Ceremony::new();
    let v1 = c.root("v1.json", &["--root-key", "@r1", "--threshold", "1", "--manifest-key", "@k1"], &["r1"]);
    let v2 = c.root("v2.json", &["--from", "v1.json", "--manifest-key", "@k2", "--revoke", "@k1"], &["r1"]);
    let by_k1 = c.manifest("k1");
    accepted(&c.verify(&by_k1, &v1, &[]), 1);
    let revoked = c.verify(&by_k1, &v1, &["--root-update", v2.to_str().unwrap()]);
    refused(
        &revoked,
        &format!("the manifest is signed by key {}, which root version 2 revokes", c.key_id("k1")),
    );
    // And no later version may trust it again.
    let relisted = c.root("v3.json", &["--from", "v2.json", "--manifest-key", "@k2"], &["r1"]);
    let body: Value = serde_json::from_slice(&std::fs::read(&relisted).unwrap()).unwrap();
    assert_eq!(body["signed"]["revoked_key_ids"][0], c.key_id("k1"), "root new carries revocations forward");
    let again = cli(&[
        "root",
        "new",
        "--out",
        c.path("v3b.json").to_str().unwrap(),
        "--from",
        v2.to_str().unwrap(),
        "--manifest-key",
        &c.key("k1"),
    ]);
    assert!(stderr(&again).contains("is revoked"), "{}", stderr(&again));
}

#[tokio::test]
async fn the_service_serves_every_root_version_and_the_newest() {
    let app = spawn_app().await;
    let newest: Value = app
        .get("/v1/firmware/root")
        .bearer_auth(app.user_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(newest["signed"]["version"], 1, "the built-in DEV ONLY root");
    assert_eq!(newest["signed"]["manifest_keys"][0]["key_id"], app.state.signer.key_id());
    assert_eq!(app.get("/v1/firmware/root").send().await.unwrap().status(), 401);

    let c = Ceremony::new();
    let v1 = c.root("v1.json", &["--root-key", "@r1", "--threshold", "1", "--manifest-key", "@k1"], &["r1"]);
    let signing_key = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/dev-signing.pem");
    let v2 = c.root("v2.json", &["--from", "v1.json", "--manifest-key", signing_key], &["r1"]);
    let dir = c.root_dir("roots", &[&v1, &v2]);
    let app = spawn_app_with(&[("NOWATCH_OTA__SIGNING__ROOT_DIR", dir.to_str().unwrap())]).await;
    let get = |path: &'static str| app.get(path).bearer_auth(app.user_token()).send();
    let newest = get("/v1/firmware/root").await.unwrap();
    assert_eq!(newest.status(), 200);
    assert_eq!(newest.text().await.unwrap(), std::fs::read_to_string(&v2).unwrap(), "served as signed");
    assert_eq!(
        get("/v1/firmware/root/1").await.unwrap().text().await.unwrap(),
        std::fs::read_to_string(&v1).unwrap()
    );
    assert_eq!(
        get("/v1/firmware/root/2").await.unwrap().text().await.unwrap(),
        std::fs::read_to_string(&v2).unwrap()
    );
    let missing = get("/v1/firmware/root/3").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("no root version 3; the newest is 2"));
    assert_eq!(get("/v1/firmware/root/0").await.unwrap().status(), 400);
    assert_eq!(get("/v1/firmware/root/two").await.unwrap().status(), 400);
}

#[tokio::test]
async fn the_service_refuses_to_start_on_a_root_chain_devices_would_refuse() {
    let c = Ceremony::new();
    let v1 = first_root(&c);
    // Version 2 signed only by keys version 1 does not know.
    let v2 = c.root("v2.json", &["--from", "v1.json", "--root-key", "@r5", "--threshold", "1"], &["r5"]);
    let v3 = c.root("v3.json", &["--from", "v1.json"], &["r1", "r2"]);
    let unsigned_step = c.root_dir("unsigned-step", &[&v1, &v2]);
    let gap = c.root_dir("gap", &[&v1]);
    std::fs::copy(&v3, gap.join("3.root.json")).unwrap();
    for (dir, says) in [
        (unsigned_step, "root version 2 has 0 valid signature(s) by root keys of version 1"),
        (gap, "no 2.root.json"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut env = crate::helpers::base_env(&tmp).await;
        env.insert("NOWATCH_OTA__SIGNING__ROOT_DIR".into(), dir.display().to_string());
        let error = Application::build(Settings::load_from(env).unwrap()).await.err().unwrap().to_string();
        assert!(error.contains("`signing.root_dir`") && error.contains(says), "{}: {error}", dir.display());
    }
}
