//! The real binary as a separate process, for tests that kill it or measure it.

use std::collections::HashMap;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{free_port, listening_within};

/// The real `nowatch-ota serve`, started on a free port with `env` only.
pub struct Binary {
    pub child: std::process::Child,
    pub base: String,
    /// Its log (stdout and stderr), printed when a test fails while it runs.
    log: tempfile::NamedTempFile,
}

pub fn start_binary(env: &HashMap<String, String>) -> Binary {
    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nowatch-ota"))
        .arg("serve")
        .env_clear()
        .envs(env)
        .env("NOWATCH_OTA__SERVER__PORT", port.to_string())
        .stdout(Stdio::from(log.reopen().unwrap()))
        .stderr(Stdio::from(log.reopen().unwrap()))
        .spawn()
        .unwrap();
    assert!(listening_within(port, std::time::Duration::from_secs(30)), "the service did not start");
    Binary { child, base: format!("http://127.0.0.1:{port}"), log }
}

impl Binary {
    /// SIGKILL: no destructor, no graceful shutdown.
    pub fn kill9(self) {
        drop(self);
    }

    /// Its log so far (lines still in its 20 ms write buffer are not there yet).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

/// A failing test must not leave the service running, and shows the end of the service's log.
impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- the last {} lines of the service's log ---", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The PostgreSQL server of tests that need one whatever the run selects: `TEST_DATABASE_URL`,
/// else the local one the README's test command starts.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database on [`postgres_admin_url`]'s server and returns its URL.
pub async fn fresh_postgres_database() -> String {
    let admin_url = postgres_admin_url();
    let name = format!("nwota_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL at {admin_url} (TEST_DATABASE_URL): {e}"));
    sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("CREATE DATABASE {name}")).await.unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Uploads a release to any running service and returns its JSON.
pub async fn upload_at(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    version: &str,
    bytes: Vec<u8>,
) -> Value {
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(json!({"version": version, "hardware": ["nw-s1"]}).to_string()),
        )
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name("fw.bin"));
    let response = client
        .post(format!("{base}/v1/admin/firmware"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Publishes a release on any running service (`body`: channel, stages, ...); the rollout's JSON.
pub async fn publish_at(client: &reqwest::Client, base: &str, token: &str, id: &str, body: Value) -> Value {
    let response = client
        .post(format!("{base}/v1/admin/firmware/{id}/publish"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// `GET url` with a bearer token, its body as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

/// Files anywhere under `dir` (none if it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|e| if e.path().is_dir() { files_under(&e.path()) } else { vec![e.path()] })
        .collect()
}
