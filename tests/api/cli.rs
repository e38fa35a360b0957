//! The release engineer's commands against a running service: `publish` and `rollout`, with the
//! exit codes scripts rely on.

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{image_bytes, sha256_hex, spawn_app};

async fn run(args: &[&str]) -> (i32, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_nowatch-ota")).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap(), json, String::from_utf8_lossy(&output.stderr).to_string())
}

#[tokio::test]
async fn publish_uploads_and_starts_a_staged_rollout_and_rollout_steers_it() {
    let app = spawn_app().await;
    let file = app.dir.path().join("fw-2.0.0.bin");
    let bytes = image_bytes(3, 3_000_000);
    std::fs::write(&file, &bytes).unwrap();
    let token = app.admin_token();
    let (code, out, err) = run(&[
        "publish",
        "--server",
        &app.address,
        "--token",
        &token,
        "--file",
        file.to_str().unwrap(),
        "--version",
        "2.0.0",
        "--hardware",
        "nw-s1,nw-s2",
        "--channel",
        "beta",
        "--stages",
        "1,10,50,100",
        "--stage-duration",
        "600",
        "--notes",
        "Bug fixes",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["release"]["sha256"], sha256_hex(&bytes));
    assert_eq!(out["release"]["hardware"], serde_json::json!(["nw-s1", "nw-s2"]));
    assert_eq!(out["release"]["release_notes"], "Bug fixes");
    // The release as it is after the publish, not the draft the upload answered.
    assert_eq!(out["release"]["state"], "published", "{out}");
    assert_eq!(out["release"]["channels"], serde_json::json!(["beta"]));
    assert_eq!(out["rollout"]["channel"], "beta");
    assert_eq!(out["rollout"]["percent"], 1.0);
    assert_eq!(out["rollout"]["stages"][0]["min_duration_s"], 600);
    assert_eq!(out["rollout"]["stages"][3]["min_duration_s"], 0);
    let rollout_id = out["rollout"]["id"].as_str().unwrap().to_owned();

    let (code, status, _) =
        run(&["rollout", "status", &rollout_id, "--server", &app.address, "--token", &token]).await;
    assert_eq!((code, status["state"].as_str()), (0, Some("active")));
    let (code, paused, _) =
        run(&["rollout", "pause", &rollout_id, "--server", &app.address, "--token", &token]).await;
    assert_eq!((code, paused["state"].as_str()), (0, Some("paused")));
    let (code, _, err) =
        run(&["rollout", "pause", &rollout_id, "--server", &app.address, "--token", &token]).await;
    assert_eq!(code, 2, "a refused action exits 2");
    assert!(err.contains("409") && err.contains("cannot pause"), "{err}");

    // Publishing the same version again to the same channel: the upload is idempotent, the
    // publish conflicts.
    let (code, _, err) = run(&[
        "publish",
        "--server",
        &app.address,
        "--token",
        &token,
        "--file",
        file.to_str().unwrap(),
        "--version",
        "2.0.0",
        "--hardware",
        "nw-s1,nw-s2",
        "--channel",
        "beta",
    ])
    .await;
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn publish_exits_with_codes_scripts_can_rely_on() {
    let app = spawn_app().await;
    let file = app.dir.path().join("fw.bin");
    std::fs::write(&file, image_bytes(1, 1000)).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let base = ["publish", "--version", "1.0.0", "--hardware", "nw-s1", "--file"];

    let user = app.user_token();
    let mut args: Vec<&str> = base.to_vec();
    args.extend([file.as_str(), "--server", app.address.as_str(), "--token", user.as_str()]);
    let (code, _, err) = run(&args).await;
    assert_eq!(code, 2, "a non-admin token is refused: {err}");

    let closed = format!("http://127.0.0.1:{}", crate::helpers::free_port());
    let admin = app.admin_token();
    let mut args: Vec<&str> = base.to_vec();
    args.extend([file.as_str(), "--server", closed.as_str(), "--token", admin.as_str()]);
    assert_eq!(run(&args).await.0, 3, "an unreachable server exits 3");

    let mut args: Vec<&str> = base.to_vec();
    args.extend(["/nonexistent/fw.bin", "--server", app.address.as_str(), "--token", admin.as_str()]);
    assert_eq!(run(&args).await.0, 1, "a missing file exits 1");
    assert_eq!(crate::helpers::firmware_rows(&app).await, 0);
}
