//! Update selection: which release a device should install now. Pure: it sees only the
//! candidate releases of the device's hardware (newest first) and answers from them.

use super::rollout::{FULL_BASIS_POINTS, RolloutState, admits};
use super::{DeviceId, Version};

/// A rollout as selection needs it.
#[derive(Debug, Clone)]
pub struct RolloutGate {
    /// Position of the rollout's channel in the configured order (0 = most stable).
    pub channel_rank: usize,
    pub state: RolloutState,
    pub basis_points: u32,
    pub salt: Vec<u8>,
}

impl RolloutGate {
    /// A completed rollout admits everyone; an active or paused one the devices below its
    /// percent; a halted or aborted one no one, so a failing build stops spreading at once.
    pub fn admits(&self, device: &DeviceId) -> bool {
        match self.state {
            RolloutState::Completed => true,
            RolloutState::Active | RolloutState::Paused => {
                self.basis_points >= FULL_BASIS_POINTS || admits(&self.salt, device, self.basis_points)
            }
            RolloutState::Halted | RolloutState::Aborted => false,
        }
    }
}

/// A published, unrevoked release as selection needs it.
pub trait Candidate {
    fn version(&self) -> &Version;
    fn min_from_version(&self) -> Option<&Version>;
    fn gates(&self) -> &[RolloutGate];
}

/// A shared release is a candidate like the release itself (the catalog holds `Arc`s).
impl<C: Candidate + ?Sized> Candidate for std::sync::Arc<C> {
    fn version(&self) -> &Version {
        (**self).version()
    }
    fn min_from_version(&self) -> Option<&Version> {
        (**self).min_from_version()
    }
    fn gates(&self) -> &[RolloutGate] {
        (**self).gates()
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Device<'a> {
    pub id: &'a DeviceId,
    pub current: &'a Version,
    pub channel_rank: usize,
    /// The channel ranks the caller may see, as bits (bit `r`: rank `r`); rollouts on others
    /// do not exist for it.
    pub visible_ranks: u64,
}

impl Device<'_> {
    fn sees(&self, rank: usize) -> bool {
        rank < 64 && self.visible_ranks & (1 << rank) != 0
    }
}

/// The release to offer and the rank of the channel whose rollout admitted the device.
#[derive(Debug)]
pub struct Offer<'a, C> {
    pub release: &'a C,
    pub channel_rank: usize,
}

/// Picks the update for `device` among `releases` (one hardware id's, sorted newest first):
/// 1. candidates are above the current version and not below the hardware's `floor`, with a
///    rollout on the device's channel or a more stable one;
/// 2. the newest candidate whose rollout admits the device is chosen;
/// 3. if the device is below its `min_from_version`, the newest admitted candidate it can
///    install directly is offered instead (a stepping stone), or nothing.
pub fn select<'a, C: Candidate>(
    releases: &'a [C],
    device: &Device<'_>,
    floor: Option<&Version>,
) -> Option<Offer<'a, C>> {
    // Newest first: once a release is not above the current version, none after it is, so an
    // up-to-date device costs one comparison however many releases the hardware has.
    let above_current = releases.iter().take_while(|release| release.version() > device.current);
    let mut admitted = above_current.filter_map(|release| {
        let version = release.version();
        if floor.is_some_and(|f| version < f) {
            return None;
        }
        release
            .gates()
            .iter()
            .filter(|g| {
                g.channel_rank <= device.channel_rank && device.sees(g.channel_rank) && g.admits(device.id)
            })
            .map(|g| g.channel_rank)
            .min()
            .map(|channel_rank| Offer { release, channel_rank })
    });
    let newest = admitted.next()?;
    if directly_installable(newest.release, device.current) {
        return Some(newest);
    }
    admitted.find(|offer| directly_installable(offer.release, device.current))
}

fn directly_installable<C: Candidate>(release: &C, current: &Version) -> bool {
    release.min_from_version().is_none_or(|min| current >= min)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R {
        version: Version,
        min_from: Option<Version>,
        gates: Vec<RolloutGate>,
    }

    impl Candidate for R {
        fn version(&self) -> &Version {
            &self.version
        }
        fn min_from_version(&self) -> Option<&Version> {
            self.min_from.as_ref()
        }
        fn gates(&self) -> &[RolloutGate] {
            &self.gates
        }
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn gate(channel_rank: usize, state: RolloutState, percent: u32) -> RolloutGate {
        RolloutGate { channel_rank, state, basis_points: percent * 100, salt: b"salt".to_vec() }
    }

    fn release(version: &str, min_from: Option<&str>, gates: Vec<RolloutGate>) -> R {
        R { version: v(version), min_from: min_from.map(v), gates }
    }

    fn pick(releases: &[R], current: &str, rank: usize, floor: Option<&str>) -> Option<String> {
        let id = DeviceId::parse("dev-1").unwrap();
        let current = v(current);
        let floor = floor.map(v);
        select(
            releases,
            &Device { id: &id, current: &current, channel_rank: rank, visible_ranks: u64::MAX },
            floor.as_ref(),
        )
        .map(|o| o.release.version.to_string())
    }

    #[test]
    fn newest_admitted_release_above_the_current_version_wins() {
        let releases = [
            release("2.0.0", None, vec![gate(0, RolloutState::Halted, 100)]),
            release("1.5.0", None, vec![gate(0, RolloutState::Active, 100)]),
            release("1.0.0", None, vec![gate(0, RolloutState::Completed, 100)]),
        ];
        assert_eq!(pick(&releases, "1.0.0", 0, None).as_deref(), Some("1.5.0"));
        assert_eq!(pick(&releases, "1.5.0", 0, None), None);
    }

    #[test]
    fn channels_include_the_more_stable_ones_only() {
        let releases = [
            release("1.2.0-beta.2", None, vec![gate(1, RolloutState::Completed, 100)]),
            release("1.1.0", None, vec![gate(0, RolloutState::Completed, 100)]),
        ];
        assert_eq!(pick(&releases, "1.0.0", 0, None).as_deref(), Some("1.1.0"));
        assert_eq!(pick(&releases, "1.0.0", 1, None).as_deref(), Some("1.2.0-beta.2"));
        let newer_stable = [
            release("1.3.0", None, vec![gate(0, RolloutState::Completed, 100)]),
            release("1.2.0-beta.2", None, vec![gate(1, RolloutState::Completed, 100)]),
        ];
        assert_eq!(pick(&newer_stable, "1.0.0", 1, None).as_deref(), Some("1.3.0"));
    }

    #[test]
    fn an_up_to_date_device_looks_at_no_older_release() {
        struct Counting<'a>(R, &'a std::cell::Cell<usize>);
        impl Candidate for Counting<'_> {
            fn version(&self) -> &Version {
                self.1.set(self.1.get() + 1);
                &self.0.version
            }
            fn min_from_version(&self) -> Option<&Version> {
                self.0.min_from.as_ref()
            }
            fn gates(&self) -> &[RolloutGate] {
                &self.0.gates
            }
        }
        let looked = std::cell::Cell::new(0);
        let releases: Vec<Counting> = (0..1000)
            .rev()
            .map(|i| {
                Counting(
                    release(&format!("1.0.{i}"), None, vec![gate(0, RolloutState::Completed, 100)]),
                    &looked,
                )
            })
            .collect();
        let id = DeviceId::parse("dev-1").unwrap();
        let current = v("1.0.999");
        assert!(
            select(
                &releases,
                &Device { id: &id, current: &current, channel_rank: 0, visible_ranks: u64::MAX },
                None
            )
            .is_none()
        );
        assert_eq!(looked.get(), 1);
    }

    #[test]
    fn the_floor_is_inclusive() {
        let releases = [release("1.1.0", None, vec![gate(0, RolloutState::Completed, 100)])];
        assert_eq!(pick(&releases, "1.0.0", 0, Some("1.1.0")).as_deref(), Some("1.1.0"));
        assert_eq!(pick(&releases, "1.0.0", 0, Some("1.1.1")), None);
    }

    #[test]
    fn a_device_below_min_from_version_gets_the_stepping_stone() {
        let releases = [
            release("3.0.0", Some("2.0.0"), vec![gate(0, RolloutState::Completed, 100)]),
            release("2.1.0", None, vec![gate(0, RolloutState::Completed, 100)]),
            release("2.0.0", None, vec![gate(0, RolloutState::Completed, 100)]),
        ];
        assert_eq!(pick(&releases, "1.0.0", 0, None).as_deref(), Some("2.1.0"));
        assert_eq!(pick(&releases, "2.0.0", 0, None).as_deref(), Some("3.0.0"));
        let no_stone = [release("3.0.0", Some("2.0.0"), vec![gate(0, RolloutState::Completed, 100)])];
        assert_eq!(pick(&no_stone, "1.0.0", 0, None), None);
    }

    #[test]
    fn a_zero_percent_rollout_admits_no_one_and_paused_keeps_its_devices() {
        let nobody = [release("2.0.0", None, vec![gate(0, RolloutState::Active, 0)])];
        assert_eq!(pick(&nobody, "1.0.0", 0, None), None);
        let paused = [release("2.0.0", None, vec![gate(0, RolloutState::Paused, 100)])];
        assert_eq!(pick(&paused, "1.0.0", 0, None).as_deref(), Some("2.0.0"));
    }
}
