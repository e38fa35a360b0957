//! The one integration-test binary: every test builds the real application (`helpers::spawn_app`)
//! and talks to it over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod accel;
mod admin;
mod auth;
mod authorization;
mod bad_input;
mod chunks;
mod cli;
mod concurrency;
mod config;
mod console;
mod contract;
mod deltas;
mod device;
mod device_trust;
mod edge;
mod errors;
mod health;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod operations;
mod outages;
mod proxy;
mod redirect;
mod relay;
mod relay_link;
mod rollouts;
mod root;
mod signing;
mod storage;
mod trust_chain;
mod upload;
mod upstream;
