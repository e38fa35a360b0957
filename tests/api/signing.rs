//! Manifests verify from their JSON alone with an independent ed25519 check, and the CLI signs
//! and verifies as release engineers and devices do.

use std::collections::BTreeMap;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{Duration, Utc};
use nowatch_ota::signing::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSigner, SPEC_VERSION, canonical_json, key_id,
};
use serde_json::Value;

use crate::helpers::{image_bytes, sha256_hex};

fn body(bytes: &[u8], notes_like: &str) -> ManifestBody {
    let now = Utc::now();
    ManifestBody {
        kind: MANIFEST_TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        firmware_id: uuid::Uuid::new_v4().to_string(),
        version: "1.2.0-beta.1".into(),
        hardware: vec![format!("nw-{notes_like}")],
        channel: "beta".into(),
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        min_version: Some("1.0.0".into()),
        min_from_version: None,
        mandatory: false,
        issued_at: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        expires_at: (now + Duration::days(7)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        release_signature: None,
        chunk_size: None,
        chunk_table_sha256: None,
    }
}

/// Canonical JSON rebuilt without the crate: objects through a BTreeMap, scalars and string
/// escaping by serde_json.
fn independent_canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<&String, &Value> = map.iter().collect();
            let fields: Vec<String> = ordered
                .into_iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), independent_canonical(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            format!("[{}]", items.iter().map(independent_canonical).collect::<Vec<_>>().join(","))
        }
        other => serde_json::to_string(other).unwrap(),
    }
}

#[test]
fn a_signed_manifest_verifies_from_its_json_with_an_independent_ed25519_check() {
    let signer = ManifestSigner::new(ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]), Vec::new());
    let bytes = image_bytes(1, 4096);
    let envelope = ManifestEnvelope::sign(&body(&bytes, "s2"), &signer).unwrap();
    let wire = serde_json::to_string(&envelope).unwrap();

    // What a device holds: the JSON text and a trusted public key.
    let parsed: Value = serde_json::from_str(&wire).unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]).verifying_key();
    let message = independent_canonical(&parsed["signed"]);
    assert!(!message.contains(' ') && message.starts_with("{\"channel\":\"beta\""), "{message}");
    let signature = &parsed["signatures"][0];
    assert_eq!(signature["key_id"], sha256_hex(public.as_bytes()));
    let sig_bytes = BASE64.decode(signature["sig"].as_str().unwrap()).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig_bytes).unwrap();
    public.verify_strict(message.as_bytes(), &sig).unwrap();

    // A changed field breaks it.
    let mut tampered = parsed["signed"].clone();
    tampered["size"] = Value::from(4097);
    assert!(public.verify_strict(independent_canonical(&tampered).as_bytes(), &sig).is_err());
}

#[test]
fn canonical_json_matches_python_json_dumps_with_sorted_keys() {
    let value: Value = serde_json::json!({
        "z": [1, -2, {"b": null, "a": true}],
        "é": "tab\there \"quoted\" back\\slash \u{1} \u{7f} ünïcødé \u{2028} 😀",
        "A": 18446744073709551615u64,
        "": "",
    });
    let ours = String::from_utf8(canonical_json(&value).unwrap()).unwrap();
    let output = Command::new("python3")
        .args(["-c", "import json,sys; v=json.load(sys.stdin); sys.stdout.write(json.dumps(v, sort_keys=True, separators=(',', ':'), ensure_ascii=False))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(value.to_string().as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(output.status.success());
    assert_eq!(ours, String::from_utf8(output.stdout).unwrap());
}

#[test]
fn key_ids_are_the_sha256_of_the_raw_public_key() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]).verifying_key();
    assert_eq!(key_id(&key), sha256_hex(key.as_bytes()));
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nowatch-ota")).args(args).output().unwrap()
}

#[test]
fn the_cli_makes_keys_signs_images_and_verifies_like_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let key_arg = key.to_str().unwrap();
    assert!(cli(&["keygen", "--out", key_arg]).status.success());
    assert!(!cli(&["keygen", "--out", key_arg]).status.success(), "keygen must not overwrite a key");

    let image = dir.path().join("fw.bin");
    let bytes = image_bytes(2, 100_000);
    std::fs::write(&image, &bytes).unwrap();
    let signed = cli(&["sign", "--key", key_arg, image.to_str().unwrap()]);
    assert!(signed.status.success());
    let signature = String::from_utf8(signed.stdout).unwrap();
    let pem = std::fs::read_to_string(&key).unwrap();
    let signing_key = {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap()
    };
    let digest: [u8; 32] = hex::decode(sha256_hex(&bytes)).unwrap().try_into().unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&BASE64.decode(signature.trim()).unwrap()).unwrap();
    signing_key.verifying_key().verify_strict(&digest, &sig).unwrap();

    let signer = ManifestSigner::new(signing_key.clone(), Vec::new());
    let manifest = dir.path().join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::to_vec(&ManifestEnvelope::sign(&body(&bytes, "s1"), &signer).unwrap()).unwrap(),
    )
    .unwrap();
    let public_b64 = BASE64.encode(signing_key.verifying_key().as_bytes());
    let verify = |extra: &[&str], image: &std::path::Path| {
        let mut args = vec![
            "verify",
            "--manifest",
            manifest.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--public-key",
            &public_b64,
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let ok = verify(&["--hardware", "nw-s1", "--current-version", "1.1.0"], &image);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8(ok.stdout).unwrap().starts_with("OK:"));

    assert!(!verify(&["--hardware", "nw-s9"], &image).status.success(), "wrong hardware");
    assert!(!verify(&["--current-version", "1.2.0"], &image).status.success(), "not newer");
    let corrupt = dir.path().join("corrupt.bin");
    let mut flipped = bytes.clone();
    flipped[500] ^= 1;
    std::fs::write(&corrupt, flipped).unwrap();
    let refused = verify(&[], &corrupt);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SHA-256"));
    let stranger =
        BASE64.encode(ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]).verifying_key().as_bytes());
    let untrusted = cli(&[
        "verify",
        "--manifest",
        manifest.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--public-key",
        &stranger,
    ]);
    assert!(!untrusted.status.success());
}

#[test]
fn an_expired_manifest_is_refused() {
    let signer = ManifestSigner::new(ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]), Vec::new());
    let mut expired = body(b"x", "s1");
    expired.expires_at = (Utc::now() - Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let envelope = ManifestEnvelope::sign(&expired, &signer).unwrap();
    let result = nowatch_ota::signing::verify_manifest(&envelope, &signer.trusted_keys(), Utc::now());
    assert!(matches!(result, Err(nowatch_ota::signing::VerifyError::Expired(_))));
    let fresh = ManifestEnvelope::sign(&body(b"x", "s1"), &signer).unwrap();
    assert!(nowatch_ota::signing::verify_manifest(&fresh, &signer.trusted_keys(), Utc::now()).is_ok());
}
