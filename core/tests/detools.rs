//! The delta codec against detools 0.53.0 itself: its own patches of real firmware (from its
//! source distribution, which `tests/delta/detools-files` downloads) applied by our applier, and our
//! patches of the same pairs. Fails, never skips, if the files cannot be had.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nowatch_ota_core::delta::{Applier, ApplyError, Compression, PatchError, apply_patch, create_patch};

/// Size of detools' own heatshrink patch of the esp8266 pair
/// (`esp8266-20180511-v1.9.4--20190125-v1.10-heatshrink.patch`): ours must not be larger.
const DETOOLS_ESP8266_HEATSHRINK: usize = 96_957;

fn files() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/delta/detools-files");
        let output =
            Command::new(&script).output().unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let dir = String::from_utf8(output.stdout).unwrap();
        PathBuf::from(dir.trim()).join("tests/files")
    })
}

fn read(path: &str) -> Vec<u8> {
    let path = files().join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const ESP8266_FROM: &str = "micropython/esp8266-20180511-v1.9.4.bin";
const ESP8266_TO: &str = "micropython/esp8266-20190125-v1.10.bin";

/// The pairs our generator is checked on: `(name, from, to)`.
const PAIRS: [(&str, &str, &str); 4] = [
    ("esp8266 v1.9.4 -> v1.10", ESP8266_FROM, ESP8266_TO),
    ("pybv11 v1.10 -> 1f5d945af-dirty", "pybv11/v1.10/firmware1.bin", "pybv11/1f5d945af-dirty/firmware1.bin"),
    (
        "pybv11 1f5d945af -> 1f5d945af-dirty",
        "pybv11/1f5d945af/firmware1.bin",
        "pybv11/1f5d945af-dirty/firmware1.bin",
    ),
    (
        "pybv11 firmware0 v1.10 -> 1f5d945af-dirty",
        "pybv11/v1.10/firmware0.bin",
        "pybv11/1f5d945af-dirty/firmware0.bin",
    ),
];

/// Applies `patch` through the device-side applier with detools' default 256-byte window, fed in
/// pieces of `step` bytes as a download would.
fn apply_streaming(from: &[u8], patch: &[u8], step: usize) -> Result<Vec<u8>, ApplyError> {
    let mut applier = Applier::<256>::new();
    let mut to = Vec::new();
    let mut source = from;
    for piece in patch.chunks(step) {
        applier.push(piece, &mut source, &mut |bytes: &[u8]| {
            to.extend_from_slice(bytes);
            Ok(())
        })?;
    }
    applier.finish()?;
    Ok(to)
}

#[test]
fn detools_own_esp8266_patches_apply() {
    let (from, to) = (read(ESP8266_FROM), read(ESP8266_TO));
    for compression in ["heatshrink", "none"] {
        let patch = read(&format!("micropython/esp8266-20180511-v1.9.4--20190125-v1.10-{compression}.patch"));
        assert!(apply_patch(&from, &patch) == Ok(to.clone()), "detools' {compression} patch");
        for step in [1, 1000, 4096] {
            assert!(
                apply_streaming(&from, &patch, step) == Ok(to.clone()),
                "detools' {compression} patch by {step}"
            );
        }
    }
}

/// detools' pybv11 patches are all lzma-compressed (and some use a data format): refused, by name.
#[test]
fn detools_own_pybv11_patches_are_lzma_and_refused() {
    let dir = files().join("pybv11");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "patch") {
            let patch = std::fs::read(&path).unwrap();
            let error = apply_patch(&[], &patch).unwrap_err();
            assert_eq!(error, PatchError::Compression(1).into(), "{}", path.display());
            assert!(error.to_string().contains("lzma"));
            seen += 1;
        }
    }
    assert_eq!(seen, 6);
}

/// Uncompressed, our patch is detools' byte for byte: the bsdiff port is faithful.
#[test]
fn our_uncompressed_esp8266_patch_is_detools() {
    let ours = create_patch(&read(ESP8266_FROM), &read(ESP8266_TO), Compression::None);
    let theirs = read("micropython/esp8266-20180511-v1.9.4--20190125-v1.10-none.patch");
    assert_eq!(ours.len(), theirs.len());
    assert!(
        ours == theirs,
        "first difference at byte {:?}",
        ours.iter().zip(&theirs).position(|(a, b)| a != b)
    );
}

#[test]
fn our_esp8266_heatshrink_patch_is_no_larger_than_detools() {
    let ours = create_patch(&read(ESP8266_FROM), &read(ESP8266_TO), Compression::HEATSHRINK);
    let theirs = read("micropython/esp8266-20180511-v1.9.4--20190125-v1.10-heatshrink.patch");
    assert_eq!(theirs.len(), DETOOLS_ESP8266_HEATSHRINK);
    println!(
        "esp8266 heatshrink patch: ours {} bytes, detools' {} bytes ({:.2} %)",
        ours.len(),
        theirs.len(),
        100.0 * ours.len() as f64 / theirs.len() as f64
    );
    assert!(ours.len() <= DETOOLS_ESP8266_HEATSHRINK, "ours is {} bytes", ours.len());
}

#[test]
fn our_patches_of_real_firmware_round_trip() {
    for (name, from, to) in PAIRS {
        let (from, to) = (read(from), read(to));
        for compression in [Compression::HEATSHRINK, Compression::None] {
            let patch = create_patch(&from, &to, compression);
            println!("{name}: {} patch {} bytes for {} bytes", compression.name(), patch.len(), to.len());
            assert!(apply_patch(&from, &patch) == Ok(to.clone()), "{name}, {compression:?}");
            assert!(
                apply_streaming(&from, &patch, 4096) == Ok(to.clone()),
                "{name}, {compression:?} streaming"
            );
        }
    }
}
