//! Faults: the service killed mid-write, its blob store going away and coming back. Each test
//! runs real processes (the release binary under test, s3s-fs) and checks what a user would see
//! afterwards. Run by `tests/run` (see README).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod crash;
mod load;
mod service;
mod storage_faults;
