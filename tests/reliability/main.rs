//! Faults: the service killed mid-write; its blob store, its database and the backend behind its
//! proxy going away and coming back; two instances sharing one database and one bucket, one of
//! them killed. Each test runs real processes (the binary under test, s3s-fs, PostgreSQL, an HTTP
//! backend) and checks what a user would see. Run by `tests/run` (see README).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod crash;
mod database_down;
mod idle_bodies;
mod load;
mod migrate_race;
mod multipart_abort;
mod postgres_restart;
mod scale_out;
mod service;
mod storage_faults;
mod sweep_race;
mod upstream_faults;
