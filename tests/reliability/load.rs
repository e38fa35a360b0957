//! A minute of mixed traffic against the real binary while a rollout advances underneath:
//! 90 % update checks, 5 % downloads, 4 % reports, 1 % admin writes, from 16 concurrent clients.
//! Zero 5xx, bounded memory, every report counted exactly once. `LOAD_SECONDS` shortens it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{base_env, image_bytes, token};
use crate::service::{publish_at, start_binary, upload_at};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    server_errors: AtomicU64,
    reports_accepted: AtomicU64,
    downloads_bytes: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_mixed_traffic_with_a_rollout_advancing_gives_no_5xx_and_counts_every_report() {
    let seconds: u64 = std::env::var("LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = base_env(&dir).await;
    env.insert("NOWATCH_OTA__ROLLOUT__TICK_INTERVAL_S".into(), "1".into());
    env.insert("NOWATCH_OTA__FIRMWARE__CATALOG_REFRESH_S".into(), "2".into());
    let service = start_binary(&env);
    let base = service.base.clone();
    let client = reqwest::Client::new();
    let admin = token(json!({"sub": "ci", "isAdmin": true}));
    let user = token(json!({"sub": "watch-app"}));

    let mut ids = Vec::new();
    for (i, version) in ["1.0.0", "1.1.0"].into_iter().enumerate() {
        let release = upload_at(&client, &base, &admin, version, image_bytes(i as u8, 256 << 10)).await;
        ids.push(release["id"].as_str().unwrap().to_owned());
    }
    publish_at(&client, &base, &admin, &ids[0], json!({"channel": "stable"})).await;
    let stage_s = (seconds / 4).max(1);
    let stages = json!([{"percent": 5, "min_duration_s": stage_s}, {"percent": 25, "min_duration_s": stage_s}, {"percent": 100, "min_duration_s": 3600}]);
    let rollout = publish_at(
        &client,
        &base,
        &admin,
        &ids[1],
        json!({"channel": "stable", "min_reports": 1_000_000, "stages": stages}),
    )
    .await;
    let rollout_id = rollout["id"].as_str().unwrap().to_owned();

    let idle_kib = rss_kib(service.child.id());
    let peak_kib = Arc::new(AtomicU64::new(idle_kib));
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let sampler = {
        let (peak, pid) = (peak_kib.clone(), service.child.id());
        tokio::spawn(async move {
            while Instant::now() < deadline {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut workers = Vec::new();
    for worker in 0..16u64 {
        let (client, base, user, admin, ids, tally) =
            (client.clone(), base.clone(), user.clone(), admin.clone(), ids.clone(), tally.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let roll = (n * 7919 + worker * 104_729) % 100;
                let device = format!("w{worker}-{n}");
                let request = match roll {
                    0..90 => client
                        .get(format!(
                            "{base}/v1/firmware/check?hardware=nw-s1&version=0.9.0&device_id={device}"
                        ))
                        .bearer_auth(&user),
                    90..95 => client
                        .get(format!("{base}/v1/firmware/{}/download", ids[(n % 2) as usize]))
                        .bearer_auth(&user),
                    95..99 => client
                        .post(format!("{base}/v1/firmware/{}/report", ids[1]))
                        .bearer_auth(&user)
                        .json(&json!({"device_id": device, "status": "installed", "channel": "stable"})),
                    _ => client
                        .put(format!("{base}/v1/admin/hardware/nw-s1/floor"))
                        .bearer_auth(&admin)
                        .json(&json!({"min_version": "0.1.0"})),
                };
                let response = match request.send().await {
                    Ok(response) => response,
                    Err(e) => {
                        if tally.server_errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("dropped ({roll}): {e}");
                        }
                        continue;
                    }
                };
                tally.requests.fetch_add(1, Ordering::Relaxed);
                let status = response.status();
                if status.is_server_error() && tally.server_errors.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("{status} ({roll})");
                }
                if (95..99).contains(&roll) && status.is_success() {
                    tally.reports_accepted.fetch_add(1, Ordering::Relaxed);
                }
                let body = response.bytes().await.map(|b| b.len()).unwrap_or(0);
                if (90..95).contains(&roll) {
                    tally.downloads_bytes.fetch_add(body as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    sampler.await.unwrap();

    let requests = tally.requests.load(Ordering::Relaxed);
    let errors = tally.server_errors.load(Ordering::Relaxed);
    let reports = tally.reports_accepted.load(Ordering::Relaxed);
    let view =
        crate::service::get_json(&client, &format!("{base}/v1/admin/rollouts/{rollout_id}"), &admin).await;
    let growth_mib = peak_kib.load(Ordering::Relaxed).saturating_sub(idle_kib) / 1024;
    println!(
        "load: {seconds} s, {requests} requests ({:.0}/s), {errors} 5xx or dropped, {reports} reports, {} MiB downloaded, RSS growth {growth_mib} MiB, rollout at stage {} ({})",
        requests as f64 / seconds as f64,
        tally.downloads_bytes.load(Ordering::Relaxed) >> 20,
        view["stage"],
        view["state"]
    );
    service.kill9();

    assert_eq!(errors, 0, "no 5xx and no dropped connection under load");
    assert!(requests > seconds * 50, "the load generator ran: {requests}");
    // One token reports for every device here, so at most three count towards health; the
    // rest are kept apart, and between them every report is there once.
    let kept =
        view["counts"]["installed"].as_u64().unwrap() + view["uncounted"]["installed"].as_u64().unwrap();
    assert_eq!(kept, reports, "every accepted report counted exactly once: {view}");
    assert!(view["stage"].as_i64().unwrap() >= 1, "the rollout advanced underneath: {view}");
    assert_eq!(view["chain_valid"], true);
    // Bounded, not leaking: a leak of even 1 KiB per request would pass 128 MiB within this
    // run. The level depends on the machine: 12 MiB at 3,800 requests/s on one, 54 to 65 MiB
    // at 5,100 to 5,400/s on a faster one (this debug build, on the code before and after the
    // sixth session alike; RELIABILITY.md), most of it buffers of downloads in flight.
    assert!(growth_mib < 128, "memory grew by {growth_mib} MiB");
}
