//! The release engineer's side of the admin API, for the `publish` and `rollout` commands:
//! upload an image (streamed from disk, with a progress bar on a terminal), publish it, and
//! steer rollouts. Failures map to exit codes a script can rely on (see [`ClientError::exit_code`]).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::TryStreamExt;
use serde_json::{Value, json};

/// What went wrong, by who is to blame.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad arguments or an unreadable file: exit 1.
    #[error("{0}")]
    Local(String),
    /// The server refused the request (4xx): exit 2.
    #[error("the server refused: {status} {message}")]
    Refused { status: u16, message: String },
    /// The server failed or could not be reached (5xx, network): exit 3.
    #[error("the server failed: {0}")]
    Server(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Local(_) => 1,
            Self::Refused { .. } => 2,
            Self::Server(_) => 3,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    server: String,
    token: String,
}

/// What `publish` sends.
pub struct PublishArgs<'a> {
    pub file: &'a Path,
    pub version: &'a str,
    pub hardware: &'a [String],
    pub channel: &'a str,
    /// Percents; empty = everyone at once.
    pub stages: &'a [f64],
    pub stage_duration_s: u64,
    pub release_notes: Option<&'a str>,
    pub release_signature: Option<&'a str>,
}

impl Client {
    pub fn new(server: &str, token: &str) -> Result<Self, ClientError> {
        url::Url::parse(server).map_err(|e| ClientError::Local(format!("--server {server:?}: {e}")))?;
        Ok(Self {
            http: reqwest::Client::new(),
            server: server.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    async fn answer(response: reqwest::Response) -> Result<Value, ClientError> {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
            .unwrap_or_default();
        if status.is_client_error() {
            Err(ClientError::Refused { status: status.as_u16(), message })
        } else {
            Err(ClientError::Server(format!("{status} {message}")))
        }
    }

    fn network(e: reqwest::Error) -> ClientError {
        ClientError::Server(format!("cannot reach the server: {e}"))
    }

    /// Uploads the image, then publishes it; returns `{release, rollout}`.
    pub async fn publish(&self, args: &PublishArgs<'_>) -> Result<Value, ClientError> {
        let release = self.upload(args).await?;
        let id =
            release["id"].as_str().ok_or_else(|| ClientError::Server("the upload answered no id".into()))?;
        let mut publish = json!({"channel": args.channel});
        if !args.stages.is_empty() {
            let last = args.stages.len() - 1;
            publish["stages"] = args
                .stages
                .iter()
                .enumerate()
                .map(|(i, p)| json!({"percent": p, "min_duration_s": if i == last { 0 } else { args.stage_duration_s }}))
                .collect();
        }
        let response = self
            .http
            .post(format!("{}/v1/admin/firmware/{id}/publish", self.server))
            .bearer_auth(&self.token)
            .json(&publish)
            .send()
            .await
            .map_err(Self::network)?;
        let rollout = Self::answer(response).await?;
        // The release as the publish left it (published, on its channel), not the upload's draft.
        let response = self
            .http
            .get(format!("{}/v1/admin/firmware/{id}", self.server))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(Self::network)?;
        let release = Self::answer(response).await?;
        Ok(json!({"release": release, "rollout": rollout}))
    }

    /// Uploads the image, streamed, with a progress bar on a terminal; the new draft.
    async fn upload(&self, args: &PublishArgs<'_>) -> Result<Value, ClientError> {
        let file = tokio::fs::File::open(args.file)
            .await
            .map_err(|e| ClientError::Local(format!("--file {}: {e}", args.file.display())))?;
        let size = file.metadata().await.map_err(|e| ClientError::Local(e.to_string()))?.len();
        let sent = Arc::new(AtomicU64::new(0));
        let progress = std::io::stderr().is_terminal().then(|| spawn_progress(sent.clone(), size));
        let counted = sent.clone();
        let body = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect_ok(move |chunk| {
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        });
        let mut metadata = json!({"version": args.version, "hardware": args.hardware});
        if let Some(notes) = args.release_notes {
            metadata["release_notes"] = notes.into();
        }
        if let Some(signature) = args.release_signature {
            metadata["release_signature"] = signature.into();
        }
        let name = args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let form = reqwest::multipart::Form::new()
            .part("metadata", reqwest::multipart::Part::text(metadata.to_string()))
            .part(
                "file",
                reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body), size)
                    .file_name(name),
            );
        let response = self
            .http
            .post(format!("{}/v1/admin/firmware", self.server))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await;
        if let Some(progress) = progress {
            progress.abort();
            eprintln!();
        }
        Self::answer(response.map_err(Self::network)?).await
    }

    /// The signed root document of `version` (`GET /v1/firmware/root/{version}`), or the newest
    /// (`GET /v1/firmware/root`); `None` when the service has no such version. Read up to the
    /// largest root a verifier accepts; the token is sent only when there is one
    /// (`auth.public_downloads` serves roots without).
    pub async fn root_document(&self, version: Option<u64>) -> Result<Option<Vec<u8>>, ClientError> {
        let path = version.map(|v| format!("/{v}")).unwrap_or_default();
        let mut request = self.http.get(format!("{}/v1/firmware/root{path}", self.server));
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        let mut response = request.send().await.map_err(Self::network)?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(Self::answer(response)
                .await
                .err()
                .unwrap_or_else(|| ClientError::Server("the root document answered no body".into())));
        }
        let limit = crate::signing::root::MAX_ROOT_BYTES;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Self::network)? {
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                return Err(ClientError::Server(format!("a root document is larger than {limit} bytes")));
            }
        }
        Ok(Some(body))
    }

    /// `status` (GET) or a control action (`pause`, `resume`, `advance`, `abort`) on a rollout.
    pub async fn rollout(&self, action: &str, id: &str) -> Result<Value, ClientError> {
        let base = format!("{}/v1/admin/rollouts/{id}", self.server);
        let request = match action {
            "status" => self.http.get(base),
            "pause" | "resume" | "advance" | "abort" => self.http.post(format!("{base}/{action}")),
            other => return Err(ClientError::Local(format!("unknown rollout action {other:?}"))),
        };
        Self::answer(request.bearer_auth(&self.token).send().await.map_err(Self::network)?).await
    }
}

/// Redraws `[#####     ] 42% 12.0/28.5 MiB` on stderr until aborted.
fn spawn_progress(sent: Arc<AtomicU64>, total: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            ticker.tick().await;
            let done = sent.load(Ordering::Relaxed).min(total);
            let fraction = if total == 0 { 1.0 } else { done as f64 / total as f64 };
            let filled = (fraction * 30.0) as usize;
            let mib = |b: u64| b as f64 / 1048576.0;
            eprint!(
                "\r[{}{}] {:>3.0}% {:.1}/{:.1} MiB",
                "#".repeat(filled),
                " ".repeat(30 - filled),
                fraction * 100.0,
                mib(done),
                mib(total)
            );
            let _ = std::io::stderr().flush();
        }
    })
}
