//! Replicas rolled out together migrate a fresh PostgreSQL database at the same moment: every
//! one of them must succeed (one migrates, the others wait for it and find nothing to do).

use std::process::{Command, Stdio};

use sea_orm::ConnectionTrait;

use crate::postgres_restart::Cluster;

/// Processes started at once, and how many fresh databases they race on.
const PROCESSES: usize = 4;
const ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_migrating_a_fresh_postgres_database_at_once_all_succeed() {
    let cluster = Cluster::create();
    let admin = sea_orm::Database::connect(cluster.url()).await.unwrap();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("migrate_race_{round}");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        let mut url = url::Url::parse(&cluster.url()).unwrap();
        url.set_path(&format!("/{name}"));
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_nowatch-ota"))
                    .arg("migrate")
                    .env_clear()
                    .env("DATABASE_URL", url.as_str())
                    .env("NOWATCH_OTA__LOG__LEVEL", "warn")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
            if !output.status.success() {
                failures.push(format!(
                    "round {round}: {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
    }
    println!("migrate race: {} of {} processes failed", failures.len(), PROCESSES * ROUNDS);
    assert!(failures.is_empty(), "{failures:#?}");
}
