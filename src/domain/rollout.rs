//! Rollout rules: stages, states, and the bucketing that decides which devices a percent admits.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DeviceId, ParseError};

/// Shares are held in basis points (1/100 of a percent): 10,000 = everyone.
pub const FULL_BASIS_POINTS: u32 = 10_000;

/// One stage as clients send it: `{percent, min_duration_s}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    pub percent: f64,
    #[serde(default)]
    pub min_duration_s: u64,
}

/// A validated stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub basis_points: u32,
    pub min_duration_s: u64,
}

impl Stage {
    pub fn percent(&self) -> f64 {
        f64::from(self.basis_points) / 100.0
    }
}

/// A rollout plan: at least one stage, percents strictly increasing, the last 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages(Vec<Stage>);

impl Stages {
    pub fn parse(input: &[StageInput]) -> Result<Self, ParseError> {
        if input.is_empty() {
            return Err(ParseError("must list at least one stage".into()));
        }
        if input.len() > 100 {
            return Err(ParseError("must list at most 100 stages".into()));
        }
        let mut stages = Vec::with_capacity(input.len());
        for (i, stage) in input.iter().enumerate() {
            if !(stage.percent > 0.0 && stage.percent <= 100.0) {
                return Err(ParseError(format!("stage {i}: percent must be above 0 and at most 100")));
            }
            let basis_points = (stage.percent * 100.0).round() as u32;
            if stages.last().is_some_and(|prev: &Stage| prev.basis_points >= basis_points) {
                return Err(ParseError(format!("stage {i}: percents must be strictly increasing")));
            }
            if stage.min_duration_s > 366 * 86_400 {
                return Err(ParseError(format!("stage {i}: min_duration_s must be at most a year")));
            }
            stages.push(Stage { basis_points, min_duration_s: stage.min_duration_s });
        }
        if stages.last().map(|s| s.basis_points) != Some(FULL_BASIS_POINTS) {
            return Err(ParseError("the last stage must be 100 percent".into()));
        }
        Ok(Self(stages))
    }

    /// Everyone at once.
    pub fn immediate() -> Self {
        Self(vec![Stage { basis_points: FULL_BASIS_POINTS, min_duration_s: 0 }])
    }

    pub fn as_slice(&self) -> &[Stage] {
        &self.0
    }

    /// Stages as stored and shown: `[{percent, min_duration_s}]`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.0
                .iter()
                .map(|s| serde_json::json!({"percent": s.percent(), "min_duration_s": s.min_duration_s}))
                .collect(),
        )
    }

    /// Reads stages back from their stored JSON.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, ParseError> {
        let input: Vec<StageInput> = serde_json::from_value(value.clone())
            .map_err(|e| ParseError(format!("stored stages are unreadable: {e}")))?;
        Self::parse(&input)
    }
}

/// `bucket = u64_be(sha256(salt ‖ device_id)[0..8]) mod 10000`: where a device falls in a rollout.
pub fn bucket(salt: &[u8], device: &DeviceId) -> u32 {
    let digest = Sha256::new().chain_update(salt).chain_update(device.as_str().as_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(FULL_BASIS_POINTS)) as u32
}

/// Whether a rollout at `basis_points` admits the device: `bucket < basis_points`.
pub fn admits(salt: &[u8], device: &DeviceId, basis_points: u32) -> bool {
    bucket(salt, device) < basis_points
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(value: &str) -> Result<Self, ParseError> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ParseError(format!(
                        "{value:?} is not one of {}",
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// Where a rollout is in its life.
    RolloutState {
        Active => "active",
        Paused => "paused",
        Halted => "halted",
        Completed => "completed",
        Aborted => "aborted",
    }
);

impl RolloutState {
    /// Still running (may advance, halt, be paused or aborted).
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Active | Self::Paused | Self::Halted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(pairs: &[(f64, u64)]) -> Result<Stages, ParseError> {
        let input: Vec<_> =
            pairs.iter().map(|&(percent, min_duration_s)| StageInput { percent, min_duration_s }).collect();
        Stages::parse(&input)
    }

    #[test]
    fn stages_must_increase_and_end_at_100() {
        assert!(stages(&[(1.0, 60), (10.0, 60), (100.0, 0)]).is_ok());
        assert!(stages(&[(0.5, 0), (100.0, 0)]).is_ok());
        assert!(stages(&[]).is_err());
        assert!(stages(&[(10.0, 0), (10.0, 0), (100.0, 0)]).is_err());
        assert!(stages(&[(10.0, 0), (50.0, 0)]).is_err());
        assert!(stages(&[(0.0, 0), (100.0, 0)]).is_err());
        assert!(stages(&[(150.0, 0)]).is_err());
    }

    #[test]
    fn bucketing_is_deterministic_and_monotone() {
        let device = DeviceId::parse("watch-1").unwrap();
        let b = bucket(b"salt", &device);
        assert_eq!(b, bucket(b"salt", &device));
        assert!(b < FULL_BASIS_POINTS);
        for bp in (0..=FULL_BASIS_POINTS).step_by(250) {
            if admits(b"salt", &device, bp) {
                assert!(admits(b"salt", &device, bp + 250));
            }
        }
        assert!(admits(b"salt", &device, FULL_BASIS_POINTS));
        assert!(!admits(b"salt", &device, 0));
    }
}
