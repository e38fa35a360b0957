//! Identifier newtypes: hardware ids, device ids and channel names.

use std::fmt;

use super::ParseError;

/// Checks a name against a length range and an allowed alphabet; the first character must be
/// alphanumeric so that names never look like options, paths or hidden files.
fn check_name(
    kind: &str,
    value: &str,
    max_len: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ParseError> {
    if value.is_empty() {
        return Err(ParseError(format!("{kind} must not be empty")));
    }
    if value.len() > max_len {
        return Err(ParseError(format!("{kind} must be at most {max_len} characters")));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(ParseError(format!("{kind} must start with a letter or digit")));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(ParseError(format!("{kind} must not contain {bad:?}")));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, ParseError> {
                check_name($kind, value, $max, $allowed)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A hardware model id such as `nw-s1-rev3`: what an image is built for.
    HardwareId, "hardware id", 64, |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
);

name_type!(
    /// A device's stable id (serial number or UUID), the input of rollout bucketing.
    DeviceId, "device id", 128, |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
);

name_type!(
    /// A release channel name such as `stable` or `beta`.
    Channel, "channel", 32, |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_ids_refuse_paths_and_control_characters() {
        assert!(HardwareId::parse("nw-s1_rev3.b").is_ok());
        for bad in ["", "../etc", "a/b", "a b", "a\u{0}", "é", ".hidden", &"x".repeat(65)] {
            assert!(HardwareId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn channels_are_lowercase_names() {
        assert!(Channel::parse("beta-2").is_ok());
        assert!(Channel::parse("Beta").is_err());
    }
}
