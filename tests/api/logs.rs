//! What the real binary writes to its log and its error output: no password from a database URL,
//! and client-supplied text escaped, so a client can neither forge a line nor send escape
//! sequences to an operator's terminal.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{base_env, free_port, image_bytes, token};

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

/// The service's stdout, collected as raw bytes while it runs.
struct Running {
    child: std::process::Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    port: u16,
}

impl Running {
    fn start(env: &HashMap<String, String>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nowatch-ota"))
            .arg("serve")
            .env_clear()
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (mut pipe, sink) = (child.stdout.take().unwrap(), stdout.clone());
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let started = Instant::now();
        let port = loop {
            let text = String::from_utf8_lossy(&stdout.lock().unwrap()).into_owned();
            if let Some(port) = text.split("listening port=").nth(1) {
                break port.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the service did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, stdout, port }
    }

    /// Stops the service as an orchestrator does (SIGTERM, so the log is written out) and returns
    /// everything it logged.
    fn stop(mut self) -> Vec<u8> {
        let stopped = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(stopped.success());
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        self.stdout.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn client_text_in_the_pretty_log_is_escaped_and_cannot_forge_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&dir).await;
    env.insert("NOWATCH_OTA__LOG__LEVEL".into(), "info".into());
    let service = Running::start(&env);
    let base = format!("http://127.0.0.1:{}", service.port);
    // An admin token's `sub` is the actor of every admin line.
    let forged = "2026-11-24T09:41:49.771475Z  INFO forged: role admin granted to mallory";
    let sub = format!("bot\n{forged}\r\n\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m");
    let admin = token(json!({"sub": sub, "isAdmin": true}));
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(json!({"version": "1.0.0", "hardware": ["nw-s1"]}).to_string()),
        )
        .part("file", reqwest::multipart::Part::bytes(image_bytes(3, 2048)).file_name("fw.bin"));
    let client = reqwest::Client::new();
    let uploaded = client
        .post(format!("{base}/v1/admin/firmware"))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    // Raw control bytes in a request line: refused by the HTTP parser before anything is logged.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    raw.write_all(b"GET /v1/\x1b[31m\n\x07 HTTP/1.1\r\nHost: x\r\nUser-Agent: \x1b[2Jua\r\n\r\n").unwrap();
    let _ = raw.read(&mut [0u8; 1024]);
    let logged = service.stop();

    let text = String::from_utf8_lossy(&logged);
    assert!(text.contains("forged: role admin granted to mallory"), "the actor is logged: {text}");
    for control in [0x1b, 0x07, 0x0d] {
        assert!(!logged.contains(&control), "the log holds the raw byte {control:#04x}: {text:?}");
    }
    assert!(!text.contains('\u{9b}'), "the log holds a raw C1 control: {text:?}");
    for line in text.lines() {
        assert!(!line.starts_with(forged), "a client wrote a line of its own: {text}");
    }
}

#[tokio::test]
async fn a_request_the_http_parser_refuses_is_answered_400_and_not_logged_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&dir).await;
    env.insert("NOWATCH_OTA__LOG__LEVEL".into(), "info".into());
    let service = Running::start(&env);
    for raw in [
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\x00b\"\r\n\r\n"[..],
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Odd: \x7f\r\n\r\n"[..],
    ] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", service.port)).unwrap();
        stream.write_all(raw).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&answer));
    }
    let logged = service.stop();
    let text = String::from_utf8_lossy(&logged);
    assert!(!text.contains("ERROR"), "a client's malformed request was logged as an error: {text}");
}
