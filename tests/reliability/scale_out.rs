//! Scale-out: two service processes on one PostgreSQL database and one S3 bucket (s3s-fs), admin
//! calls on the first (A), device checks and reports on both (A and B), both engines ticking
//! every second. A publish on A is offered by B within `firmware.catalog_refresh_s`; each
//! advance, completion and halt happens once; every report of a storm through both is counted
//! once; after `kill -9` of A, B keeps serving and evaluating. Figures are printed (run with
//! `--nocapture`); README "Scaling out" quotes them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nowatch_ota::db::entities::{device_report, rollout_report_count};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{base_env, fresh_bucket, image_bytes, s3_env, token};
use crate::service::{Binary, fresh_postgres_database, get_json, publish_at, start_binary, upload_at};

/// `firmware.catalog_refresh_s` of both instances.
const REFRESH_S: u64 = 2;
/// What a loaded 2-core machine may add to a refresh before B's answer shows A's change.
const REFRESH_MARGIN_S: u64 = 8;
/// The longest a rollout here may take to reach its final state: its stages last 1-2 s and both
/// engines tick every second, so this is only the bound that turns a hang into a clear failure.
const SETTLE_S: u64 = 60;

/// Two instances on one fresh database and one fresh bucket; A migrated it before B started.
struct Pair {
    a: Binary,
    b: Binary,
    client: reqwest::Client,
    admin: String,
    user: String,
    database_url: String,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env = base_env(&dir).await;
        let database_url = fresh_postgres_database().await;
        env.insert("NOWATCH_OTA__DATABASE__URL".into(), database_url.clone());
        env.extend(s3_env(&fresh_bucket().await));
        env.insert("NOWATCH_OTA__ROLLOUT__TICK_INTERVAL_S".into(), "1".into());
        env.insert("NOWATCH_OTA__FIRMWARE__CATALOG_REFRESH_S".into(), REFRESH_S.to_string());
        env.insert("NOWATCH_OTA__ROLLOUT__MIN_REPORTS".into(), "5".into());
        // JSON lines, and the engine's transitions, to tell which instance made each one.
        env.insert("NOWATCH_OTA__LOG__FORMAT".into(), "json".into());
        env.insert(
            "NOWATCH_OTA__LOG__LEVEL".into(),
            "warn,nowatch_ota::services::rollout_engine=info".into(),
        );
        // One after the other: two processes migrating one fresh database at once is another
        // matter (issue 16, item 8).
        let a = start_binary(&env);
        let b = start_binary(&env);
        Self {
            a,
            b,
            client: reqwest::Client::new(),
            admin: token(json!({"sub": "release-engineer", "isAdmin": true})),
            user: token(json!({"sub": "watch-app"})),
            database_url,
            _dir: dir,
        }
    }

    async fn upload(&self, version: &str, seed: u8) -> String {
        let release =
            upload_at(&self.client, &self.a.base, &self.admin, version, image_bytes(seed, 64 << 10)).await;
        release["id"].as_str().unwrap().to_owned()
    }

    /// Publishes on A; the rollout's id and salt.
    async fn publish(&self, firmware_id: &str, body: Value) -> (String, String) {
        let rollout = publish_at(&self.client, &self.a.base, &self.admin, firmware_id, body).await;
        (rollout["id"].as_str().unwrap().to_owned(), rollout["salt"].as_str().unwrap().to_owned())
    }
}

/// What the update check on `base` offers `device` at version 0.9.0: `Ok(None)` on 204, the
/// status and body of anything but 200 and 204 as `Err`.
async fn offered(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    device: &str,
) -> Result<Option<Value>, String> {
    let response = client
        .get(format!("{base}/v1/firmware/check?hardware=nw-s1&version=0.9.0&device_id={device}"))
        .bearer_auth(user)
        .send()
        .await
        .map_err(|e| format!("check of {device} on {base}: {e}"))?;
    match response.status().as_u16() {
        204 => Ok(None),
        200 => Ok(Some(response.json().await.map_err(|e| e.to_string())?)),
        other => {
            Err(format!("check of {device} on {base}: {other} {}", response.text().await.unwrap_or_default()))
        }
    }
}

async fn offered_version(client: &reqwest::Client, base: &str, user: &str, device: &str) -> Option<String> {
    let offer = offered(client, base, user, device).await.unwrap();
    offer.map(|o| o["firmware"]["version"].as_str().unwrap().to_owned())
}

/// One report, as the device's own account (each watch its owner's, so every outcome counts
/// towards health), from a version the release is offered to; its status and body (`null` when
/// the connection failed: status 0).
async fn report(
    client: &reqwest::Client,
    base: &str,
    firmware_id: &str,
    device: &str,
    status: &str,
    error: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({"device_id": device, "status": status, "from_version": "0.9.0"});
    if let Some(error) = error {
        body["error"] = json!(error);
    }
    let sent = client
        .post(format!("{base}/v1/firmware/{firmware_id}/report"))
        .bearer_auth(token(json!({"sub": format!("owner-of-{device}")})))
        .json(&body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let code = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

async fn rollout(client: &reqwest::Client, base: &str, admin: &str, id: &str) -> Value {
    get_json(client, &format!("{base}/v1/admin/rollouts/{id}"), admin).await
}

/// Polls the rollout on `base` until it is in `state`; its view.
async fn wait_for_state(client: &reqwest::Client, base: &str, admin: &str, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(SETTLE_S);
    loop {
        let view = rollout(client, base, admin, id).await;
        if view["state"] == state {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "rollout {id} did not become {state} within {SETTLE_S} s; it is {} at stage {}, events {:?}",
            view["state"],
            view["stage"],
            kinds(&view)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The kinds of a rollout view's events, in order.
fn kinds(view: &Value) -> Vec<String> {
    view["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

/// `(from_stage, to_stage)` of each event of `kind`, in order.
fn stage_moves(view: &Value, kind: &str) -> Vec<(i64, i64)> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| (e["detail"]["from_stage"].as_i64().unwrap(), e["detail"]["to_stage"].as_i64().unwrap()))
        .collect()
}

/// The README's bucket: `u64_be(sha256(salt ‖ device_id)[0..8]) mod 10000`, computed here
/// independently of the service's code.
fn bucket(salt_hex: &str, device: &str) -> u64 {
    let digest = Sha256::new().chain_update(hex::decode(salt_hex).unwrap()).chain_update(device).finalize();
    u64::from_be_bytes(digest[..8].try_into().unwrap()) % 10_000
}

/// How many of the engine's transitions each instance logged: (moved, halted).
fn transitions_logged(service: &Binary) -> (usize, usize) {
    let messages: Vec<String> = service
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line["message"].as_str().map(str::to_owned))
        .collect();
    (
        messages.iter().filter(|m| *m == "rollout moved").count(),
        messages.iter().filter(|m| *m == "rollout halted").count(),
    )
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_one_instance_is_offered_by_the_other_within_the_catalog_refresh() {
    let pair = Pair::start().await;
    let (client, user) = (&pair.client, pair.user.as_str());
    assert_eq!(offered_version(client, &pair.b.base, user, "watch-1").await, None, "nothing published yet");

    let mut took = Vec::new();
    for (seed, version) in ["1.0.0", "1.1.0", "1.2.0"].into_iter().enumerate() {
        let id = pair.upload(version, seed as u8).await;
        pair.publish(&id, json!({"channel": "stable"})).await;
        let published = Instant::now();
        assert_eq!(
            offered_version(client, &pair.a.base, user, "watch-1").await.as_deref(),
            Some(version),
            "A applies its own publish at once"
        );
        let deadline = published + Duration::from_secs(REFRESH_S + REFRESH_MARGIN_S);
        let offer = loop {
            let offer = offered(client, &pair.b.base, user, "watch-1").await.unwrap();
            if let Some(offer) = offer.filter(|o| o["firmware"]["version"] == version) {
                break offer;
            }
            assert!(
                Instant::now() < deadline,
                "B does not offer {version}, published on A {} ago (catalog_refresh_s = {REFRESH_S})",
                seconds(published.elapsed())
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        took.push(published.elapsed());

        // B serves the image A uploaded, from the shared bucket.
        let url = offer["download_url"].as_str().unwrap();
        assert!(url.starts_with(&pair.b.base), "B links to itself: {url}");
        let image = client.get(url).bearer_auth(user).send().await.unwrap();
        assert_eq!(image.status(), 200);
        assert_eq!(image.bytes().await.unwrap().as_ref(), image_bytes(seed as u8, 64 << 10).as_slice());
    }
    println!(
        "scale_out: B offered A's publish after {} (catalog_refresh_s = {REFRESH_S})",
        took.iter().map(|d| seconds(*d)).collect::<Vec<_>>().join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_advance_completion_and_halt_happens_once_with_both_engines_ticking() {
    let pair = Pair::start().await;
    let (client, admin, user) = (&pair.client, pair.admin.as_str(), pair.user.as_str());
    let bases = [pair.a.base.as_str(), pair.b.base.as_str()];
    let good = pair.upload("2.0.0", 1).await;
    let bad = pair.upload("2.1.0", 2).await;
    let (advancing, _) = pair
        .publish(
            &good,
            json!({"channel": "stable", "min_reports": 5, "max_failure_rate": 0.05, "stages": [
                {"percent": 10, "min_duration_s": 1},
                {"percent": 50, "min_duration_s": 2},
                {"percent": 100, "min_duration_s": 1},
            ]}),
        )
        .await;
    let (halting, salt) = pair
        .publish(
            &bad,
            json!({"channel": "stable", "min_reports": 10, "max_failure_rate": 0.05, "stages": [
                {"percent": 10, "min_duration_s": 3600},
                {"percent": 100},
            ]}),
        )
        .await;
    // A device the bad release's first stage admits gets it from A at once.
    let early = (0..).map(|n| format!("early-{n}")).find(|d| bucket(&salt, d) < 1000).unwrap();
    // Failures count towards health only from devices the 10 % stage admits.
    let admitted: Vec<String> =
        (0..).map(|n| format!("bad-{n}")).filter(|d| bucket(&salt, d) < 1000).take(16).collect();
    assert_eq!(offered_version(client, bases[0], user, &early).await.as_deref(), Some("2.1.0"));

    // Healthy outcomes for the good release, failures for the bad one, through both instances.
    let mut sent = Vec::new();
    for n in 0..8 {
        let base = bases[n % 2];
        let device = format!("ok-{n}");
        sent.push(tokio::spawn({
            let (client, base, good) = (client.clone(), base.to_owned(), good.clone());
            async move {
                let first = report(&client, &base, &good, &device, "downloading", None).await;
                let then = report(&client, &base, &good, &device, "installed", None).await;
                vec![first, then]
            }
        }));
    }
    for n in 0..12 {
        let base = bases[n % 2];
        let device = admitted[n].clone();
        sent.push(tokio::spawn({
            let (client, base, bad) = (client.clone(), base.to_owned(), bad.clone());
            async move { vec![report(&client, &base, &bad, &device, "failed", Some("boot loop")).await] }
        }));
    }
    for task in sent {
        for (code, body) in task.await.unwrap() {
            assert_eq!(code, 200, "a report was refused: {body}");
        }
    }

    let started = Instant::now();
    let halted = wait_for_state(client, bases[0], admin, &halting, "halted").await;
    let halted_after = started.elapsed();
    wait_for_state(client, bases[0], admin, &advancing, "completed").await;
    let completed_after = started.elapsed();
    // Three more ticks of each engine, and more failures for the halted rollout, give a duplicate
    // every chance to appear.
    for n in 0..4 {
        let (code, body) =
            report(client, bases[n % 2], &bad, &admitted[12 + n], "failed", Some("boot loop")).await;
        assert_eq!(code, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    for base in bases {
        let view = rollout(client, base, admin, &advancing).await;
        assert_eq!(view["state"], "completed");
        assert_eq!(kinds(&view), ["created", "advanced", "advanced", "completed"], "on {base}: {view:#}");
        assert_eq!(stage_moves(&view, "advanced"), [(0, 1), (1, 2)], "each stage advanced once");
        assert_eq!(stage_moves(&view, "completed"), [(2, 2)], "completed once, from the last stage");
        assert_eq!(view["chain_valid"], true, "{view:#}");
        assert!(view["events"].as_array().unwrap().iter().skip(1).all(|e| e["actor"] == "system"));

        let view = rollout(client, base, admin, &halting).await;
        assert_eq!(view["state"], "halted");
        assert_eq!(kinds(&view), ["created", "halted"], "halted once, on {base}: {view:#}");
        assert_eq!(view["chain_valid"], true, "{view:#}");
        let detail = &view["events"][1]["detail"];
        assert_eq!(detail["installed"], 0, "{detail}");
        assert!(detail["failed"].as_u64().unwrap() >= 10, "halted only once min_reports were in: {detail}");
        assert_eq!(view["events"], halted["events"], "nothing happened to it after the halt");
    }

    // Users of either instance: the completed release for everyone, the halted one for no one.
    let devices: Vec<String> = std::iter::once(early).chain((0..20).map(|n| format!("watch-{n}"))).collect();
    let deadline = Instant::now() + Duration::from_secs(REFRESH_S + REFRESH_MARGIN_S);
    for base in bases {
        for device in &devices {
            loop {
                let version = offered_version(client, base, user, device).await;
                if version.as_deref() == Some("2.0.0") {
                    break;
                }
                assert!(Instant::now() < deadline, "{base} offers {version:?} to {device}, not 2.0.0");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    let (moved_a, halted_a) = transitions_logged(&pair.a);
    let (moved_b, halted_b) = transitions_logged(&pair.b);
    println!(
        "scale_out: halted {} and completed {} after the last report; transitions logged: \
         A {moved_a} moved + {halted_a} halted, B {moved_b} moved + {halted_b} halted \
         (events: 3 moves, 1 halt)",
        seconds(halted_after),
        seconds(completed_after)
    );
}

/// What one report of the storm got.
#[derive(Debug)]
struct Sent {
    device: String,
    instance: &'static str,
    status: &'static str,
    error: Option<&'static str>,
    code: u16,
    body: Value,
}

/// One device's accepted answers: report_count → the (status, error) answered with it.
type Answers = BTreeMap<i64, BTreeSet<(String, Option<String>)>>;

/// Each device's script: steps in order, each step's reports all sent at once, each to both
/// instances at once (so every report races its twin on the other instance).
fn script(device: usize) -> Vec<Vec<(&'static str, Option<&'static str>)>> {
    let one = |s: &'static str| vec![(s, None)];
    match device % 4 {
        0 => vec![one("downloading"), one("downloaded"), one("installing"), one("installed")],
        1 => vec![
            one("downloading"),
            one("installing"),
            vec![("failed", Some("flash write"))],
            one("downloading"),
            one("downloaded"),
            one("installed"),
        ],
        // A burst: four statuses at once, eight reports for one device.
        2 => vec![vec![
            ("downloading", None),
            ("downloaded", None),
            ("installing", None),
            ("failed", Some("crc")),
        ]],
        _ => vec![one("downloading"), vec![("failed", Some("e1"))], vec![("failed", Some("e2"))]],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_of_a_storm_through_both_instances_is_counted_once() {
    const DEVICES: usize = 64;
    let pair = Pair::start().await;
    let (client, admin) = (&pair.client, pair.admin.as_str());
    let firmware_id = pair.upload("3.0.0", 3).await;
    let (rollout_id, _) = pair
        .publish(
            &firmware_id,
            json!({"channel": "stable", "min_reports": 1_000_000, "stages": [{"percent": 100, "min_duration_s": 3600}]}),
        )
        .await;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in 0..DEVICES {
        let (client, firmware_id) = (client.clone(), firmware_id.clone());
        let bases = [("A", pair.a.base.clone()), ("B", pair.b.base.clone())];
        tasks.push(tokio::spawn(async move {
            let device = format!("storm-{d}");
            let mut results = Vec::new();
            for step in script(d) {
                let mut step_sends = Vec::new();
                for (status, error) in step {
                    for (instance, base) in &bases {
                        let (client, firmware_id, device, base, instance) =
                            (client.clone(), firmware_id.clone(), device.clone(), base.clone(), *instance);
                        step_sends.push(tokio::spawn(async move {
                            let (code, body) =
                                report(&client, &base, &firmware_id, &device, status, error).await;
                            Sent { device, instance, status, error, code, body }
                        }));
                    }
                }
                for send in step_sends {
                    results.push(send.await.unwrap());
                }
            }
            results
        }));
    }
    let mut sent = Vec::new();
    for task in tasks {
        sent.extend(task.await.unwrap());
    }
    let storm = started.elapsed();

    let mut problems = Vec::new();
    let mut by_code: BTreeMap<u16, usize> = BTreeMap::new();
    for s in &sent {
        *by_code.entry(s.code).or_default() += 1;
        if s.code != 200 && s.code != 409 {
            problems.push(format!(
                "{} {}{} on {}: {} {}",
                s.device,
                s.status,
                s.error.map(|e| format!(" ({e})")).unwrap_or_default(),
                s.instance,
                s.code,
                s.body
            ));
        }
    }

    // What the accepted reports say: per device, (report_count → (status, error)) as answered.
    let mut accepted: BTreeMap<&str, Answers> = BTreeMap::new();
    for s in sent.iter().filter(|s| s.code == 200) {
        let answer =
            (s.body["status"].as_str().unwrap().to_owned(), s.body["error"].as_str().map(str::to_owned));
        accepted
            .entry(s.device.as_str())
            .or_default()
            .entry(s.body["report_count"].as_i64().unwrap())
            .or_default()
            .insert(answer);
        if s.body["rollout_id"] != rollout_id.as_str() {
            problems
                .push(format!("{} attributed to {} instead of the rollout", s.device, s.body["rollout_id"]));
        }
    }
    let mut from_answers: BTreeMap<String, i64> = BTreeMap::new();
    for (device, answers) in &accepted {
        // A change numbers the device's reports 1, 2, 3, ...; a repeat answers the same number
        // and status. Two statuses under one number: two changes read the same previous one.
        for (count, statuses) in answers {
            if statuses.len() > 1 {
                problems.push(format!("{device}: report_count {count} answered for {statuses:?}"));
            }
        }
        let numbers: Vec<i64> = answers.keys().copied().collect();
        if numbers != (1..=numbers.len() as i64).collect::<Vec<_>>() {
            problems.push(format!("{device}: report_counts answered {numbers:?}, not 1, 2, 3, ..."));
        }
        let (_, latest) = answers.last_key_value().unwrap();
        *from_answers.entry(latest.first().unwrap().0.clone()).or_default() += 1;
    }

    // What the database holds, read directly.
    let db = sea_orm::Database::connect(&pair.database_url).await.unwrap();
    let firmware_uuid: uuid::Uuid = firmware_id.parse().unwrap();
    let rollout_uuid: uuid::Uuid = rollout_id.parse().unwrap();
    let rows = device_report::Entity::find()
        .filter(device_report::Column::FirmwareId.eq(firmware_uuid))
        .all(&db)
        .await
        .unwrap();
    let mut from_rows: BTreeMap<String, i64> = BTreeMap::new();
    for row in &rows {
        *from_rows.entry(row.status.to_string()).or_default() += 1;
        if row.rollout_id != Some(rollout_uuid) {
            problems.push(format!("{}: device_report.rollout_id {:?}", row.device_id, row.rollout_id));
        }
        match accepted.get(row.device_id.as_str()) {
            None => problems.push(format!("{}: a device_report row but no accepted report", row.device_id)),
            Some(answers) => {
                let (count, latest) = answers.last_key_value().unwrap();
                let (status, _) = latest.first().unwrap();
                if row.report_count != *count || row.status.as_str() != status {
                    problems.push(format!(
                        "{}: row says {} after {} reports, the answers {status} after {count}",
                        row.device_id, row.status, row.report_count
                    ));
                }
            }
        }
    }
    if rows.len() != accepted.len() {
        problems.push(format!(
            "{} device_report rows for {} devices with accepted reports",
            rows.len(),
            accepted.len()
        ));
    }
    let counters: BTreeMap<String, i64> = rollout_report_count::Entity::find()
        .filter(rollout_report_count::Column::RolloutId.eq(rollout_uuid))
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.status, c.devices))
        .filter(|(_, n)| *n != 0)
        .collect();
    if counters.values().any(|n| *n < 0) {
        problems.push(format!("negative counters in rollout_report_count: {counters:?}"));
    }
    if counters != from_rows {
        problems.push(format!("rollout_report_count {counters:?} != recount of device_report {from_rows:?}"));
    }

    // What an admin sees.
    let view = rollout(client, &pair.a.base, admin, &rollout_id).await;
    let shown: BTreeMap<String, i64> = view["counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(status, n)| (status.clone(), n.as_i64().unwrap()))
        .filter(|(_, n)| *n != 0)
        .collect();
    if shown != from_answers {
        problems.push(format!(
            "the rollout's counts {shown:?} != recount of the accepted answers {from_answers:?}"
        ));
    }
    if shown != from_rows {
        problems.push(format!("the rollout's counts {shown:?} != recount of device_report {from_rows:?}"));
    }

    println!(
        "scale_out: storm of {} reports for {DEVICES} devices through A and B in {}: answers {by_code:?}; \
         counts shown {shown:?}, counters {counters:?}, recount of rows {from_rows:?}, of answers {from_answers:?}",
        sent.len(),
        seconds(storm)
    );
    assert!(problems.is_empty(), "{} problems after the storm:\n{}", problems.len(), problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_of_one_instance_the_other_keeps_serving_and_evaluating() {
    let Pair { a, b, client, admin, user, database_url: _, _dir } = Pair::start().await;
    let upload = |version: &'static str, seed: u8| {
        let (client, base, admin) = (client.clone(), a.base.clone(), admin.clone());
        async move {
            let release = upload_at(&client, &base, &admin, version, image_bytes(seed, 64 << 10)).await;
            release["id"].as_str().unwrap().to_owned()
        }
    };
    let good = upload("4.0.0", 4).await;
    let bad = upload("4.1.0", 5).await;
    let stages = json!([
        {"percent": 10, "min_duration_s": 1},
        {"percent": 50, "min_duration_s": 2},
        {"percent": 100, "min_duration_s": 2},
    ]);
    let advancing = publish_at(
        &client,
        &a.base,
        &admin,
        &good,
        json!({"channel": "stable", "stages": stages}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let halting = publish_at(
        &client,
        &a.base,
        &admin,
        &bad,
        json!({"channel": "stable", "min_reports": 6, "stages": [{"percent": 10, "min_duration_s": 3600}, {"percent": 100}]}),
    )
    .await;
    let admitted: Vec<String> = (0..)
        .map(|n| format!("bad-{n}"))
        .filter(|d| bucket(halting["salt"].as_str().unwrap(), d) < 1000)
        .take(8)
        .collect();
    let halting = halting["id"].as_str().unwrap().to_owned();

    // Devices on B check and report the good release all along, before and after the kill.
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (client, base, user, good) = (client.clone(), b.base.clone(), user.clone(), good.clone());
        let (stop, killed) = (stop.clone(), killed.clone());
        async move {
            let (mut before, mut after, mut failures) = (0u64, 0u64, Vec::new());
            // Bounded: the deadline of the waits below ends the test long before this.
            for n in 0..100_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let device = format!("load-{n}");
                if let Err(e) = offered(&client, &base, &user, &device).await {
                    failures.push(e);
                }
                for status in ["downloading", "installed"] {
                    let (code, body) = report(&client, &base, &good, &device, status, None).await;
                    if code != 200 {
                        failures.push(format!("report {status} of {device}: {code} {body}"));
                    }
                }
                let counter = if killed.load(Ordering::Relaxed) { &mut after } else { &mut before };
                *counter += 3;
            }
            (before, after, failures)
        }
    });

    // Kill A once the engines have moved the good rollout one stage, with two stages to go.
    let deadline = Instant::now() + Duration::from_secs(SETTLE_S);
    while !kinds(&rollout(&client, &a.base, &admin, &advancing).await).contains(&"advanced".to_owned()) {
        assert!(Instant::now() < deadline, "the rollout did not advance within {SETTLE_S} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a_base = a.base.clone();
    a.kill9();
    killed.store(true, Ordering::Relaxed);
    let killed_at = Instant::now();
    assert!(client.get(format!("{a_base}/healthz")).send().await.is_err(), "A is gone");

    for device in &admitted {
        let (code, body) = report(&client, &b.base, &bad, device, "failed", Some("boot loop")).await;
        assert_eq!(code, 200, "B accepts reports after A died: {body}");
    }
    let halted = wait_for_state(&client, &b.base, &admin, &halting, "halted").await;
    let halted_after = killed_at.elapsed();
    let completed = wait_for_state(&client, &b.base, &admin, &advancing, "completed").await;
    let completed_after = killed_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (before, after, failures) = load.await.unwrap();

    assert!(failures.is_empty(), "B failed {} requests:\n{}", failures.len(), failures.join("\n"));
    assert!(after > 0, "B answered requests after the kill");
    assert_eq!(kinds(&completed), ["created", "advanced", "advanced", "completed"], "{completed:#}");
    assert_eq!(stage_moves(&completed, "advanced"), [(0, 1), (1, 2)]);
    assert_eq!(completed["chain_valid"], true, "{completed:#}");
    assert_eq!(kinds(&halted), ["created", "halted"], "{halted:#}");
    assert_eq!(halted["chain_valid"], true, "{halted:#}");
    // What devices on B are offered now: the completed release, whoever they are.
    for n in 0..20 {
        assert_eq!(
            offered_version(&client, &b.base, &user, &format!("watch-{n}")).await.as_deref(),
            Some("4.0.0")
        );
    }
    println!(
        "scale_out: after kill -9 of A, B halted a rollout {} and completed one {} later; B answered \
         {before} requests before and {after} after the kill, none failed",
        seconds(halted_after),
        seconds(completed_after)
    );
}
