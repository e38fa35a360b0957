//! What a device checks before it installs an image, as one ordered list: [`DEVICE_CHECKS`].
//! `nowatch-ota verify` runs exactly this list in this order, and README's list of device checks
//! is tested against it, so the documentation, the tool and a watch's verifier cannot drift.

use semver::Version;

use super::ManifestBody;

/// One check, named as README names it: the watch's verifier's own list (`nowatch-ota-watch`,
/// which a watch runs and `nowatch-ota verify` checks with), so the two cannot drift.
pub use nowatch_ota_watch::Check;

/// Every device check, in the order a device makes them: first whether to believe the manifest
/// at all, then whether it is for this device, then whether the bytes are the ones it names
/// (the image whole, or the chunk table and then each chunk: a spec 1.1 manifest relayed by a
/// phone).
pub const DEVICE_CHECKS: [Check; 11] = Check::ALL;

/// What a device knows about itself. A fact left out skips the checks that need it.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub hardware: Option<String>,
    pub current_version: Option<Version>,
    /// The device's channel, and the channels from most to least stable.
    pub channel: Option<(String, Vec<String>)>,
}

/// Runs one of the checks on a verified manifest's body that need only the body and the device:
/// [`Check::Hardware`] to [`Check::Floor`]; the others pass here (they need the envelope, the
/// clock or the image). The error says what failed; the caller prefixes the check's name.
/// Versions compare by semver precedence (build metadata ignored), as the service and the
/// watch compare them.
pub fn check_body(check: Check, body: &ManifestBody, device: &Device) -> Result<(), String> {
    let version = || Version::parse(&body.version).map_err(|e| format!("version: {e}"));
    match check {
        Check::Hardware => match &device.hardware {
            Some(hardware) if body.hardware != [hardware.as_str()] => {
                Err(format!("the manifest is for {:?}, not exactly this device's {hardware}", body.hardware))
            }
            _ => Ok(()),
        },
        Check::Channel => {
            let Some((channel, order)) = &device.channel else { return Ok(()) };
            let rank = |c: &str| order.iter().position(|o| o == c);
            let mine = rank(channel).ok_or_else(|| format!("{channel} is not one of {order:?}"))?;
            match rank(&body.channel) {
                Some(theirs) if theirs <= mine => Ok(()),
                _ => Err(format!("the manifest is for {}, less stable than {channel}", body.channel)),
            }
        }
        Check::Newer => match &device.current_version {
            Some(current) if version()?.cmp_precedence(current).is_le() => {
                Err(format!("{} is not above the current {current}", body.version))
            }
            _ => Ok(()),
        },
        Check::MinFromVersion => match (&device.current_version, &body.min_from_version) {
            (Some(current), Some(min_from)) => {
                let min_from = Version::parse(min_from).map_err(|e| format!("min_from_version: {e}"))?;
                match current.cmp_precedence(&min_from).is_ge() {
                    true => Ok(()),
                    false => Err(format!(
                        "{} installs only from {min_from} (min_from_version) or later, not from {current}",
                        body.version
                    )),
                }
            }
            _ => Ok(()),
        },
        Check::Floor => match &body.min_version {
            Some(floor) => {
                let floor = Version::parse(floor).map_err(|e| format!("min_version: {e}"))?;
                match version()?.cmp_precedence(&floor).is_ge() {
                    true => Ok(()),
                    false => Err(format!(
                        "{} is below the anti-rollback floor (min_version) {floor}",
                        body.version
                    )),
                }
            }
            None => Ok(()),
        },
        Check::Signature | Check::Type | Check::Expiry | Check::Image | Check::ChunkTable | Check::Chunk => {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(version: &str, hardware: &[&str], channel: &str) -> ManifestBody {
        ManifestBody {
            kind: super::super::MANIFEST_TYPE.into(),
            spec_version: super::super::SPEC_VERSION.into(),
            firmware_id: "id".into(),
            version: version.into(),
            hardware: hardware.iter().map(|h| (*h).to_owned()).collect(),
            channel: channel.into(),
            size: 1,
            sha256: "00".into(),
            min_version: Some("1.0.0".into()),
            min_from_version: Some("2.0.0".into()),
            mandatory: false,
            issued_at: String::new(),
            expires_at: String::new(),
            release_signature: None,
            chunk_size: None,
            chunk_table_sha256: None,
        }
    }

    fn device(hardware: &str, current: &str, channel: &str) -> Device {
        let order = ["stable", "beta", "alpha"].map(String::from).to_vec();
        Device {
            hardware: Some(hardware.into()),
            current_version: Some(Version::parse(current).unwrap()),
            channel: Some((channel.into(), order)),
        }
    }

    fn failed(body: &ManifestBody, device: &Device) -> Vec<&'static str> {
        DEVICE_CHECKS.iter().filter(|&&c| check_body(c, body, device).is_err()).map(|c| c.name()).collect()
    }

    #[test]
    fn each_check_refuses_what_it_names_and_nothing_else() {
        let ok = body("3.0.0", &["hw-a"], "beta");
        assert!(failed(&ok, &device("hw-a", "2.0.0", "beta")).is_empty());
        assert_eq!(failed(&ok, &device("hw-b", "2.0.0", "beta")), ["hardware"]);
        assert_eq!(
            failed(&body("3.0.0", &["hw-a", "hw-b"], "beta"), &device("hw-a", "2.0.0", "beta")),
            ["hardware"]
        );
        assert_eq!(failed(&ok, &device("hw-a", "2.0.0", "stable")), ["channel"]);
        assert!(failed(&ok, &device("hw-a", "2.0.0", "alpha")).is_empty());
        assert_eq!(failed(&ok, &device("hw-a", "3.0.0", "beta")), ["newer"]);
        assert_eq!(failed(&ok, &device("hw-a", "1.5.0", "beta")), ["min_from_version"]);
        let below_floor = ManifestBody { min_version: Some("3.1.0".into()), ..ok.clone() };
        assert_eq!(failed(&below_floor, &device("hw-a", "2.0.0", "beta")), ["floor"]);
        let unknown = device("hw-a", "2.0.0", "nightly");
        assert_eq!(failed(&ok, &unknown), ["channel"]);
    }

    #[test]
    fn build_metadata_does_not_make_a_version_newer_or_older() {
        let ok = body("3.0.0+build.7", &["hw-a"], "beta");
        assert_eq!(failed(&ok, &device("hw-a", "3.0.0+build.2", "beta")), ["newer"]);
        let floored = ManifestBody { min_version: Some("3.0.0+build.9".into()), ..ok.clone() };
        assert!(failed(&floored, &device("hw-a", "2.0.0", "beta")).is_empty());
        let from = ManifestBody { min_from_version: Some("2.0.0+build.9".into()), ..ok };
        assert!(failed(&from, &device("hw-a", "2.0.0+build.1", "beta")).is_empty());
    }

    #[test]
    fn a_fact_the_device_does_not_give_skips_its_checks() {
        let ok = body("3.0.0", &["hw-a", "hw-b"], "alpha");
        assert!(failed(&ok, &Device::default()).is_empty());
    }
}
