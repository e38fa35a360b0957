//! Per-instance request limits: keyed GCRA rate limiters (the `governor` crate) for update checks
//! per device, reports per account and per device, and devices new to an account per day.
//!
//! They live in this process's memory only, so N instances behind a load balancer let through up
//! to N times each figure, and a restart forgets them: they bound a flood, they are not a quota.
//! A limit set to 0 has no limiter at all. A refusal is [`ApiError::TooManyRequests`]: 429 with
//! `Retry-After` and a message naming the setting.
//!
//! Memory: each limiter keeps one entry per key (the key and an atomic timestamp);
//! [`Limits::forget_idle`], run by the maintenance loop every [`Limits::sweep_every`], drops the
//! entries that can no longer refuse anything (`governor` waits two periods to be sure), so the
//! check limiter holds the devices seen in the last two intervals plus one sweep.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::{DashMapStateStore, DefaultHasher};
use governor::{Quota, RateLimiter};
use nohash_hasher::BuildNoHashHasher;

use crate::config::{LimitSettings, Settings};
use crate::domain::DeviceId;
use crate::error::ApiError;

/// Check-limiter entries made room for at start: a fleet of about a million watches checking
/// hourly keeps some 19,000; the table and its control bytes cost about 5 MiB of address space,
/// of which pages are touched as entries land.
const CHECK_CAPACITY: usize = 1 << 18;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// One keyed limiter and what a refusal tells the client. `S` hashes the key into the map.
struct Limit<K: Hash + Eq + Clone, S: BuildHasher + Clone = DefaultHasher> {
    limiter: RateLimiter<K, DashMapStateStore<K, S>, DefaultClock>,
    refusal: String,
    /// The most entries seen at a sweep since the map last gave memory back.
    peak: AtomicUsize,
    /// The room made up front, kept however empty the map gets.
    capacity: usize,
}

/// Shards of each limiter's concurrent map. With `governor`'s default (4 per core) a shard grows
/// large under a flood of new device ids, and growing or sweeping it holds every check that
/// hashes to it: the update check's tail latency (bench/PROFILE.md, seventh round). More,
/// smaller shards stall for shorter.
const SHARDS: usize = 256;

impl<K: Hash + Eq + Clone, S: BuildHasher + Clone + Default> Limit<K, S> {
    /// `None` for a zero quota: the limit is off and costs nothing. Room for `capacity` keys is
    /// made up front, so a map that fills does not rehash shard after shard under load.
    fn new(quota: Option<Quota>, capacity: usize, refusal: String) -> Option<Self> {
        let state =
            dashmap::DashMap::with_capacity_and_hasher_and_shard_amount(capacity, S::default(), SHARDS);
        let limiter = RateLimiter::new(quota?, state, DefaultClock::default());
        Some(Self { limiter, refusal, peak: AtomicUsize::new(0), capacity })
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            ApiError::too_many_requests(&self.refusal, wait)
        })
    }

    /// Drops the entries that can no longer refuse anything. Memory goes back only once a map
    /// that outgrew its first room holds under a quarter of its peak: shrinking at every sweep
    /// while a flood refills the map reallocated every shard twice per sweep (bench/PROFILE.md,
    /// eighth round).
    fn forget_idle(&self) {
        let peak = self.peak.fetch_max(self.limiter.len(), Ordering::Relaxed).max(self.limiter.len());
        self.limiter.retain_recent();
        let left = self.limiter.len();
        if peak > self.capacity && left < peak / 4 {
            self.limiter.shrink_to_fit();
            self.peak.store(left, Ordering::Relaxed);
        }
    }
}

/// `per` requests spread over `period`, all of them usable at once (a burst of `per`), so a
/// client that waited a whole period may send them together; `None` when `per` is 0.
fn spread(per: u32, period: Duration) -> Option<Quota> {
    let burst = NonZeroU32::new(per)?;
    Some(Quota::with_period(period / per)?.allow_burst(burst))
}

/// The limits of this instance, in [`crate::state::AppState`].
pub struct Limits {
    /// Keyed by [`Limits::check_key`]: the token's account and the device together. The key is
    /// already a keyed hash, so the map uses it as it is instead of hashing it twice more.
    checks: Option<Limit<u64, BuildNoHashHasher<u64>>>,
    /// The process's random key for [`Limits::check_key`].
    check_keys: std::hash::RandomState,
    reports_by_account: Option<Limit<String>>,
    reports_by_device: Option<Limit<DeviceId>>,
    new_devices: Option<Limit<String>>,
    sweep_every: Duration,
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Self {
        Self::new(settings.firmware.min_check_interval_s, &settings.limits)
    }

    /// `min_check_interval_s` is `firmware.min_check_interval_s`; every 0 turns its limit off.
    pub fn new(min_check_interval_s: u64, limits: &LimitSettings) -> Self {
        let interval = Duration::from_secs(min_check_interval_s);
        let (account, device, new) = (
            limits.reports_per_account_per_minute,
            limits.reports_per_device_per_minute,
            limits.new_devices_per_account_per_day,
        );
        Self {
            check_keys: std::hash::RandomState::new(),
            checks: Limit::new(
                Quota::with_period(interval),
                CHECK_CAPACITY,
                format!(
                    "device_id: checked again within firmware.min_check_interval_s ({min_check_interval_s} s)"
                ),
            ),
            reports_by_account: Limit::new(
                spread(account, MINUTE),
                0,
                format!(
                    "reports: more than limits.reports_per_account_per_minute ({account}) from this account"
                ),
            ),
            reports_by_device: Limit::new(
                spread(device, MINUTE),
                0,
                format!(
                    "device_id: more than limits.reports_per_device_per_minute ({device}) for this device"
                ),
            ),
            new_devices: Limit::new(
                spread(new, DAY),
                0,
                format!(
                    "device_id: more than limits.new_devices_per_account_per_day ({new}) new devices for this account"
                ),
            ),
            // Often enough that the check limiter, the one with the most keys, holds little more
            // than one interval's devices; seldom enough that the sweeps cost nothing to speak of.
            sweep_every: Duration::from_secs(match min_check_interval_s {
                0 => 10,
                s => s.min(10),
            }),
        }
    }

    /// An update check by `device`: at most one per `firmware.min_check_interval_s`. In memory:
    /// the check path still never touches the database.
    /// Keyed by the account and the device together, so a token that sends another account's
    /// device id spends its own allowance, never the watch's.
    pub fn check_update(&self, sub: &str, device: &DeviceId) -> Result<(), ApiError> {
        self.checks.as_ref().map_or(Ok(()), |limit| limit.check(&self.check_key(sub, device)))
    }

    /// A 64-bit SipHash of (account, device) under a per-process random key: collisions are out
    /// of a client's reach, and an entry holds 8 bytes of key instead of two strings.
    fn check_key(&self, sub: &str, device: &DeviceId) -> u64 {
        self.check_keys.hash_one((sub, device.as_str()))
    }

    /// A report by account `sub` for `device`, before it is recorded. The account's allowance is
    /// spent first, so a device flooding past its own limit also uses up its account's.
    pub fn report(&self, sub: &str, device: &DeviceId) -> Result<(), ApiError> {
        if let Some(limit) = &self.reports_by_account {
            // `check_key` takes `&String`: a report costs a database transaction, next to which
            // copying the `sub` is nothing.
            limit.check(&sub.to_owned())?;
        }
        self.reports_by_device.as_ref().map_or(Ok(()), |limit| limit.check(device))
    }

    /// A device that account `sub` reports for the first time: at most
    /// `limits.new_devices_per_account_per_day` a day. Call it where a report is about to create
    /// the device (in [`crate::services::reports`]), before the insert, so that a refused report
    /// creates nothing; it spends one of the account's allowance each time it says `Ok`.
    pub fn new_device(&self, sub: &str) -> Result<(), ApiError> {
        self.new_devices.as_ref().map_or(Ok(()), |limit| limit.check(&sub.to_owned()))
    }

    /// How often the maintenance loop should call [`Self::forget_idle`].
    pub fn sweep_every(&self) -> Duration {
        self.sweep_every
    }

    /// Drops every entry that is back to a fresh state (its key could send a full burst again)
    /// and gives the freed capacity back, so that memory follows the keys seen lately, not all
    /// keys ever seen.
    pub fn forget_idle(&self) {
        if let Some(limit) = &self.checks {
            limit.forget_idle();
        }
        if let Some(limit) = &self.reports_by_account {
            limit.forget_idle();
        }
        if let Some(limit) = &self.reports_by_device {
            limit.forget_idle();
        }
        if let Some(limit) = &self.new_devices {
            limit.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use actix_web::ResponseError;

    use super::*;

    fn settings(new_devices_per_account_per_day: u32) -> LimitSettings {
        LimitSettings {
            reports_per_account_per_minute: 0,
            reports_per_device_per_minute: 0,
            new_devices_per_account_per_day,
        }
    }

    #[test]
    fn an_account_gets_its_daily_new_devices_and_then_429_naming_the_limit() {
        let limits = Limits::new(0, &settings(2));
        assert!(limits.new_device("uid_a").is_ok());
        assert!(limits.new_device("uid_a").is_ok());

        let refused = limits.new_device("uid_a").unwrap_err();
        assert_eq!(refused.status_code(), 429);
        let response = refused.error_response();
        let seconds: u64 = response.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
        // Two a day: the next one is half a day after the first, less the moments since.
        assert!((1..=12 * 60 * 60).contains(&seconds), "Retry-After {seconds}");
        let message = &refused.messages()[0];
        assert!(message.contains("limits.new_devices_per_account_per_day (2)"), "{message}");
        assert!(message.ends_with(&format!("; retry after {seconds} s")), "{message}");

        assert!(limits.new_device("uid_b").is_ok(), "another account has its own allowance");
    }

    #[test]
    fn a_limit_of_zero_is_off() {
        let limits = Limits::new(0, &settings(0));
        let device = DeviceId::parse("watch-1").unwrap();
        for _ in 0..1000 {
            assert!(limits.new_device("uid_a").is_ok());
            assert!(limits.report("uid_a", &device).is_ok());
            assert!(limits.check_update("uid_a", &device).is_ok());
        }
    }

    #[test]
    fn forgetting_idle_entries_keeps_devices_within_their_interval_and_drops_the_rest() {
        let device = DeviceId::parse("watch-1").unwrap();
        let entries = |limits: &Limits| limits.checks.as_ref().unwrap().limiter.len();

        let hourly = Limits::new(3600, &settings(0));
        hourly.check_update("uid_a", &device).unwrap();
        hourly.forget_idle();
        assert_eq!(entries(&hourly), 1, "the entry that refuses the next check stays");
        assert!(hourly.check_update("uid_a", &device).is_err());

        // Polled, not timed: what matters is that the entry goes once the interval has passed.
        let every_second = Limits::new(1, &settings(0));
        every_second.check_update("uid_a", &device).unwrap();
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            every_second.forget_idle();
            if entries(&every_second) == 0 {
                break;
            }
        }
        assert_eq!(entries(&every_second), 0, "memory follows the devices seen lately");
        assert!(every_second.check_update("uid_a", &device).is_ok());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        use crate::error::retry_after_secs;
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(20)), 20);
        assert_eq!(retry_after_secs(Duration::from_millis(19_001)), 20);
    }
}
