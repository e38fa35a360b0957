//! The `nowatch-ota` command; see [`nowatch_ota::cli`].

use std::process::ExitCode;

use clap::Parser;
use nowatch_ota::cli::Cli;
use nowatch_ota::client::ClientError;

/// mimalloc rather than glibc's malloc: a proxied request makes dozens of small short-lived
/// allocations (headers, futures, log fields), and glibc's cost more (bench/PROFILE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nowatch-ota: {e:#}");
            match e.downcast_ref::<ClientError>() {
                Some(client) => ExitCode::from(client.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}
