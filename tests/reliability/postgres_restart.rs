//! PostgreSQL stopped and started again under load, on a throwaway cluster of its own (never
//! the shared one): requests that need the database get a 503 in the NOWATCH shape, update
//! checks keep answering from the in-memory catalog, `/readyz` names the database, and once it
//! is back writes succeed again without a restart of the service. Every report that was
//! accepted is in the database exactly once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{base_env, image_bytes, token};
use crate::service::{publish_at, start_binary, upload_at};

/// A PostgreSQL cluster in a temporary directory, on its own port, run as the `postgres` user
/// (the tests run as root, which PostgreSQL refuses). Stopped at once when dropped.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    pub(crate) fn create() -> Self {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries are installed (tests/run installs them)")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .collect();
        versions.sort_by_key(|bin| {
            bin.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0)
        });
        let bin = versions.pop().expect("no /usr/lib/postgresql/*/bin/initdb");
        let dir = tempfile::Builder::new().prefix("nwota-pg-").tempdir().unwrap();
        assert!(Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap().success());
        let port = crate::helpers::free_port();
        let cluster = Self { dir, bin, port };
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "--auth=trust", "--no-sync", "-U", "postgres"]);
        cluster.start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of PostgreSQL's programs as the `postgres` user and asserts it succeeded.
    fn run(&self, program: &str, args: &[&str]) {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{program} {args:?} failed");
    }

    pub(crate) fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-w", "-D", &self.data(), "-l", &log, "-o", &options, "start"]);
    }

    /// Fast shutdown: open connections are terminated, as in a restart for maintenance.
    pub(crate) fn stop(&self) {
        self.run("pg_ctl", &["-w", "-D", &self.data(), "-m", "fast", "stop"]);
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const RESTARTING: u8 = 2;
const BACK: u8 = 3;
const PHASES: [&str; 4] = ["before", "down", "restarting", "back"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Check,
    Report,
    AdminRead,
}

/// One answered (or dropped) request of the load.
#[derive(Debug)]
struct Outcome {
    /// The phase it was sent in and the one its answer arrived in.
    sent: u8,
    done: u8,
    kind: Kind,
    device: String,
    /// The status, or `None` when the connection failed.
    status: Option<u16>,
    /// The body of a 5xx, or the transport error.
    detail: Option<String>,
    at: Instant,
    took: Duration,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

fn wait_for(what: &str, limit_s: u64, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(limit_s);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit_s} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_gives_503s_then_recovers_without_a_restart() {
    let cluster = Cluster::create();
    let dir = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = base_env(&dir).await;
    env.insert("NOWATCH_OTA__DATABASE__URL".into(), cluster.url());
    // The catalog refresh and the rollout engine both hit the database every second, so both
    // meet the outage too.
    env.insert("NOWATCH_OTA__FIRMWARE__CATALOG_REFRESH_S".into(), "1".into());
    env.insert("NOWATCH_OTA__ROLLOUT__TICK_INTERVAL_S".into(), "1".into());
    let mut service = start_binary(&env);
    let pid = service.child.id();
    let base = service.base.clone();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let admin = token(json!({"sub": "ci", "isAdmin": true}));
    let user = token(json!({"sub": "watch-app"}));

    let release = upload_at(&client, &base, &admin, "1.0.0", image_bytes(3, 64 << 10)).await;
    let firmware_id = release["id"].as_str().unwrap().to_owned();
    let rollout = publish_at(&client, &base, &admin, &firmware_id, json!({"channel": "stable"})).await;
    let rollout_id = rollout["id"].as_str().unwrap().to_owned();

    // Update checks on workers of their own: a database request waits up to the pool's acquire
    // timeout during the outage, and must not hold the checks back on the client side.
    let phase = Arc::new(AtomicU8::new(UP));
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let mut workers = Vec::new();
    for worker in 0..10u64 {
        let (client, base, user, admin) = (client.clone(), base.clone(), user.clone(), admin.clone());
        let (phase, stop, outcomes) = (phase.clone(), stop.clone(), outcomes.clone());
        let (firmware_id, rollout_id) = (firmware_id.clone(), rollout_id.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let device = format!("w{worker}-{n}");
                let kind = match (worker, n % 4) {
                    (0..6, _) => Kind::Check,
                    (_, 0) => Kind::AdminRead,
                    _ => Kind::Report,
                };
                let request = match kind {
                    Kind::Check => client
                        .get(format!(
                            "{base}/v1/firmware/check?hardware=nw-s1&version=0.9.0&device_id={device}"
                        ))
                        .bearer_auth(&user),
                    Kind::Report => client
                        .post(format!("{base}/v1/firmware/{firmware_id}/report"))
                        .bearer_auth(&user)
                        .json(&json!({"device_id": device, "status": "installed", "channel": "stable"})),
                    Kind::AdminRead if n.is_multiple_of(8) => {
                        client.get(format!("{base}/v1/admin/rollouts/{rollout_id}")).bearer_auth(&admin)
                    }
                    Kind::AdminRead => client.get(format!("{base}/v1/admin/firmware")).bearer_auth(&admin),
                };
                let sent = phase.load(Ordering::SeqCst);
                let sent_at = Instant::now();
                let (status, detail) = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap_or_default();
                        (Some(status), (status >= 500).then_some(body))
                    }
                    Err(e) => (None, Some(e.to_string())),
                };
                let done = phase.load(Ordering::SeqCst);
                let outcome = Outcome {
                    sent,
                    done,
                    kind,
                    device,
                    status,
                    detail,
                    at: Instant::now(),
                    took: sent_at.elapsed(),
                };
                outcomes.lock().unwrap().push(outcome);
            }
        }));
    }
    // Requests of a kind sent in a phase that succeeded (or not).
    let count = |phase: u8, kind: Kind, ok: bool| {
        outcomes.lock().unwrap().iter().filter(|o| o.sent == phase && o.kind == kind && o.ok() == ok).count()
    };

    // Before: everything works.
    tokio::task::block_in_place(|| {
        wait_for("100 reports accepted before the outage", 60, || count(UP, Kind::Report, true) >= 100)
    });

    // Down: the database is stopped under the load.
    phase.store(DOWN, Ordering::SeqCst);
    let stopped_at = Instant::now();
    tokio::task::block_in_place(|| cluster.stop());
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["message"][0].as_str().unwrap().contains("database unreachable"), "{ready}");
    tokio::task::block_in_place(|| {
        wait_for("a database request answered 503 during the outage", 60, || {
            count(DOWN, Kind::Report, false) + count(DOWN, Kind::AdminRead, false) > 0
        });
        wait_for("update checks answered during the outage", 60, || count(DOWN, Kind::Check, true) >= 100);
    });
    let down_for = stopped_at.elapsed();

    // Restarting, then back: writes succeed again, with the same service process.
    phase.store(RESTARTING, Ordering::SeqCst);
    let started_at = Instant::now();
    tokio::task::block_in_place(|| cluster.start());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = client.get(format!("{base}/readyz")).send().await.unwrap();
        if probe.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz did not recover: {}", probe.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_after = started_at.elapsed();
    phase.store(BACK, Ordering::SeqCst);
    tokio::task::block_in_place(|| {
        wait_for("50 reports accepted after the restart", 60, || count(BACK, Kind::Report, true) >= 50)
    });
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(service.child.try_wait().unwrap().is_none(), "the service kept running");
    assert_eq!(service.child.id(), pid);

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let first_write_back = outcomes
        .iter()
        .filter(|o| o.sent >= RESTARTING && o.kind == Kind::Report && o.ok())
        .map(|o| o.at.saturating_duration_since(started_at))
        .min()
        .unwrap_or_default();
    for (number, name) in PHASES.iter().enumerate() {
        let of_phase: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent == number as u8).collect();
        let mut by_status: std::collections::BTreeMap<String, usize> = Default::default();
        for o in &of_phase {
            let key = format!("{:?} {}", o.kind, o.status.map_or("dropped".into(), |s| s.to_string()));
            *by_status.entry(key).or_default() += 1;
        }
        println!("postgres restart, sent {name}: {} requests {by_status:?}", of_phase.len());
    }
    let waits: Vec<Duration> = outcomes.iter().filter(|o| o.status == Some(503)).map(|o| o.took).collect();
    println!(
        "postgres restart: 503s answered after {:?} to {:?} (the pool's acquire timeout)",
        waits.iter().min().copied().unwrap_or_default(),
        waits.iter().max().copied().unwrap_or_default()
    );
    println!(
        "postgres restart: down for {down_for:?}; /readyz 200 {ready_after:?} after the start, first accepted report {first_write_back:?} after it"
    );

    // What users saw: checks always answered; every other failure was a clear 503.
    for o in &outcomes {
        let status = o.status.unwrap_or_else(|| panic!("a dropped connection: {o:?}"));
        if o.kind == Kind::Check {
            assert_eq!(status, 200, "an update check failed: {o:?}");
        } else if status >= 300 {
            assert_eq!(status, 503, "{o:?}");
            assert!(o.done >= DOWN && o.sent <= RESTARTING, "a failure outside the outage: {o:?}");
            let body: Value = serde_json::from_str(o.detail.as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["statusCode"], 503);
            assert_eq!(body["error"], "Service Unavailable");
            assert_eq!(body["message"], json!(["database unavailable"]));
            assert!(body["path"].as_str().unwrap().starts_with("/v1/"), "{body}");
        }
    }

    // Every accepted report is in the database exactly once.
    let accepted: Vec<&str> =
        outcomes.iter().filter(|o| o.kind == Kind::Report && o.ok()).map(|o| o.device.as_str()).collect();
    let db = sea_orm::Database::connect(cluster.url()).await.unwrap();
    use nowatch_ota::db::entities::device_report;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let rows: HashMap<String, i64> = device_report::Entity::find()
        .filter(device_report::Column::FirmwareId.eq(uuid::Uuid::parse_str(&firmware_id).unwrap()))
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.device_id, r.report_count))
        .collect();
    for device in &accepted {
        assert_eq!(rows.get(*device), Some(&1), "report of {device}");
    }
    assert!(rows.values().all(|count| *count == 1), "each device reported once");
    println!(
        "postgres restart: {} reports accepted, {} rows ({} written for a report that got 503)",
        accepted.len(),
        rows.len(),
        rows.len() - accepted.len()
    );
    service.kill9();
}
