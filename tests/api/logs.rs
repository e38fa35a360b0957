//! What the real binary writes to its log and its error output: no password from a database URL.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::{base_env, free_port};

/// The password of the URLs below, in pieces that must not be printed either.
const PASSWORD_PIECES: [&str; 3] = ["Zx9/Qw+Er7tY", "Qw+Er7tY", "Zx9"];

/// Runs `nowatch-ota ARGS` with `env` to its end and returns what it printed, both streams.
async fn run_to_end(args: &[&str], env: &HashMap<String, String>) -> (Option<i32>, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_nowatch-ota"))
            .args(args)
            .env_clear()
            .envs(env)
            .output(),
    )
    .await
    .expect("the binary stopped within 60 s")
    .unwrap();
    let printed =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), printed)
}

#[tokio::test]
async fn a_database_password_is_never_printed_when_start_up_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&dir).await;
    env.insert("NOWATCH_OTA__DATABASE__ACQUIRE_TIMEOUT_S".into(), "1".into());
    let port = free_port();
    let urls = [
        // A `/` in the password: not a URL the parser takes ("cannot be parsed", quoting it).
        format!("postgres://svc:Zx9/Qw+Er7tY@127.0.0.1:{port}/ota"),
        format!("postgresql://svc:Zx9/Qw+Er7tY@127.0.0.1:{port}/ota?sslmode=disable"),
        // Percent-encoded, as it should be: parsed, and the server is not there.
        format!("postgres://svc:Zx9%2FQw%2BEr7tY@127.0.0.1:{port}/ota"),
    ];
    for url in &urls {
        env.insert("DATABASE_URL".into(), url.clone());
        for command in ["serve", "migrate"] {
            let (code, printed) = run_to_end(&[command], &env).await;
            assert_eq!(code, Some(1), "{command} with {url}: {printed}");
            assert!(printed.contains("database.url"), "{command}: the error names the key: {printed}");
            for piece in PASSWORD_PIECES.iter().chain([&"Zx9%2FQw%2BEr7tY"]) {
                assert!(!printed.contains(piece), "{command} with {url} printed the password: {printed}");
            }
        }
    }
}
