//! Rollout rules: stages, states, and the bucketing that decides which devices a percent admits.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::string_enum::string_enum;
use super::{DeviceId, ParseError};

/// Shares are held in basis points (1/100 of a percent): 10,000 = everyone.
pub const FULL_BASIS_POINTS: u32 = 10_000;

/// One stage as clients send it: `{percent, min_duration_s}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    /// At most 100; stored in basis points, so at least 0.005 (which rounds to 0.01).
    #[schema(minimum = 0.005, maximum = 100.0)]
    pub percent: f64,
    /// At most a year.
    #[serde(default)]
    #[schema(maximum = 31_622_400)]
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
            // Validated as stored: a share that rounds to no basis point would admit no one
            // and could never be read back as a stage.
            let basis_points = (stage.percent * 100.0).round() as u32;
            if basis_points == 0 {
                return Err(ParseError(format!(
                    "stage {i}: percent {} rounds to 0 basis points; the smallest share is 0.01",
                    stage.percent
                )));
            }
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

string_enum!(
    /// What an event of a rollout's hash chain records.
    EventKind {
        Created => "created",
        Paused => "paused",
        Resumed => "resumed",
        Advanced => "advanced",
        Halted => "halted",
        Completed => "completed",
        Aborted => "aborted",
    }
);

/// A manual control an admin sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Advance,
    Abort,
}

impl Command {
    /// The event kind it records.
    pub fn event_kind(&self) -> EventKind {
        match self {
            Self::Pause => EventKind::Paused,
            Self::Resume => EventKind::Resumed,
            Self::Advance => EventKind::Advanced,
            Self::Abort => EventKind::Aborted,
        }
    }
}

/// Where a rollout stands: its state and its stage index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub state: RolloutState,
    pub stage: usize,
}

impl Position {
    /// The next stage, or completion after the last.
    fn advanced(self, stage_count: usize) -> Self {
        if self.stage + 1 >= stage_count {
            Self { state: RolloutState::Completed, stage: self.stage }
        } else {
            Self { stage: self.stage + 1, ..self }
        }
    }
}

/// What `command` does to a rollout at `at`, or why it cannot: pause only an active rollout;
/// resume a paused or halted one (an admin who judged the failures unrelated); advance an active
/// or paused one (past the last stage it completes); abort a live one. `completed` and `aborted`
/// are final.
pub fn apply(command: Command, at: Position, stage_count: usize) -> Result<Position, String> {
    use RolloutState::*;
    let to = match (command, at.state) {
        (Command::Pause, Active) => Position { state: Paused, ..at },
        (Command::Resume, Paused | Halted) => Position { state: Active, ..at },
        (Command::Advance, Active | Paused) => at.advanced(stage_count),
        (Command::Abort, Active | Paused | Halted) => Position { state: Aborted, ..at },
        (command, state) => {
            return Err(format!(
                "cannot {} a rollout that is {state} (at stage {})",
                command.verb(),
                at.stage
            ));
        }
    };
    Ok(to)
}

impl Command {
    fn verb(&self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Advance => "advance",
            Self::Abort => "abort",
        }
    }
}

/// Health figures of a rollout: devices whose latest report is `installed` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcomes {
    pub installed: u64,
    pub failed: u64,
}

impl Outcomes {
    pub fn total(&self) -> u64 {
        self.installed + self.failed
    }

    /// `failed / (installed + failed)`, if there is any outcome.
    pub fn failure_rate(&self) -> Option<f64> {
        (self.total() > 0).then(|| self.failed as f64 / self.total() as f64)
    }
}

/// The thresholds a rollout was published with.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub max_failure_rate: f64,
    pub min_reports: u64,
}

/// What the background evaluation decides for a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Enough outcomes and too many failures: stop offering it.
    Halt,
    /// The stage's minimum duration has passed with a healthy rate.
    Advance(Position),
}

/// Evaluates an active or paused rollout: it halts (whatever the stage's age) when at least
/// `min_reports` outcomes show a failure rate above `max_failure_rate`; an active rollout whose
/// stage has lasted `min_duration_s` advances, completing after the last stage.
pub fn evaluate(
    at: Position,
    stages: &Stages,
    health: Health,
    outcomes: Outcomes,
    stage_age_s: i64,
) -> Option<Decision> {
    if !matches!(at.state, RolloutState::Active | RolloutState::Paused) {
        return None;
    }
    if outcomes.total() >= health.min_reports
        && outcomes.failure_rate().is_some_and(|rate| rate > health.max_failure_rate)
    {
        return Some(Decision::Halt);
    }
    let stage = stages.as_slice().get(at.stage)?;
    let due = u64::try_from(stage_age_s).is_ok_and(|age| age >= stage.min_duration_s);
    (at.state == RolloutState::Active && due).then(|| Decision::Advance(at.advanced(stages.as_slice().len())))
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
        assert!(stages(&[(0.001, 0), (100.0, 0)]).is_err(), "rounds to 0 basis points");
        assert!(stages(&[(0.004, 0), (100.0, 0)]).is_err(), "rounds to 0 basis points");
        assert!(stages(&[(0.006, 0), (100.0, 0)]).is_ok(), "rounds to 1 basis point");
        assert!(stages(&[(1.001, 0), (1.004, 0), (100.0, 0)]).is_err(), "equal after rounding");
        assert!(stages(&[(f64::NAN, 0), (100.0, 0)]).is_err());
    }

    fn at(state: RolloutState, stage: usize) -> Position {
        Position { state, stage }
    }

    #[test]
    fn commands_follow_the_state_machine() {
        use RolloutState::*;
        assert_eq!(apply(Command::Pause, at(Active, 1), 3), Ok(at(Paused, 1)));
        assert!(apply(Command::Pause, at(Paused, 1), 3).is_err());
        assert_eq!(apply(Command::Resume, at(Halted, 1), 3), Ok(at(Active, 1)));
        assert!(apply(Command::Resume, at(Active, 1), 3).is_err());
        assert_eq!(apply(Command::Advance, at(Active, 1), 3), Ok(at(Active, 2)));
        assert_eq!(apply(Command::Advance, at(Active, 2), 3), Ok(at(Completed, 2)));
        assert!(apply(Command::Advance, at(Halted, 1), 3).is_err());
        assert_eq!(apply(Command::Abort, at(Halted, 2), 3), Ok(at(Aborted, 2)));
        for command in [Command::Pause, Command::Resume, Command::Advance, Command::Abort] {
            assert!(apply(command, at(Completed, 2), 3).is_err(), "completed is final");
            assert!(apply(command, at(Aborted, 2), 3).is_err(), "aborted is final");
        }
    }

    #[test]
    fn evaluation_halts_on_failures_and_advances_when_due() {
        use RolloutState::*;
        let plan = stages(&[(10.0, 60), (100.0, 0)]).unwrap();
        let health = Health { max_failure_rate: 0.1, min_reports: 10 };
        let ok = Outcomes { installed: 20, failed: 2 };
        let bad = Outcomes { installed: 8, failed: 3 };
        let few = Outcomes { installed: 0, failed: 9 };
        assert_eq!(evaluate(at(Active, 0), &plan, health, bad, 0), Some(Decision::Halt));
        assert_eq!(evaluate(at(Paused, 0), &plan, health, bad, 0), Some(Decision::Halt));
        assert_eq!(evaluate(at(Active, 0), &plan, health, few, 0), None, "below min_reports");
        assert_eq!(evaluate(at(Active, 0), &plan, health, ok, 59), None);
        assert_eq!(evaluate(at(Active, 0), &plan, health, ok, 60), Some(Decision::Advance(at(Active, 1))));
        assert_eq!(evaluate(at(Active, 1), &plan, health, ok, 0), Some(Decision::Advance(at(Completed, 1))));
        assert_eq!(evaluate(at(Paused, 0), &plan, health, ok, 600), None, "paused rollouts do not ramp");
        assert_eq!(evaluate(at(Halted, 0), &plan, health, bad, 600), None);
    }

    #[test]
    fn about_the_stage_percent_of_random_devices_are_admitted() {
        let mut seed = 0x1234_5678_u64;
        let devices: Vec<DeviceId> = (0..100_000)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                DeviceId::parse(&format!("dev-{seed:016x}")).unwrap()
            })
            .collect();
        let salt = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        for percent in [1u32, 5, 10, 25, 50, 90] {
            let admitted = devices.iter().filter(|d| admits(&salt, d, percent * 100)).count();
            let share = admitted as f64 / devices.len() as f64 * 100.0;
            assert!((share - f64::from(percent)).abs() < 1.0, "{percent}%: admitted {share:.2}%");
        }
    }

    #[test]
    fn different_salts_pick_different_devices() {
        let devices: Vec<DeviceId> =
            (0..10_000).map(|i| DeviceId::parse(&format!("watch-{i}")).unwrap()).collect();
        let pick = |salt: &[u8]| -> Vec<bool> { devices.iter().map(|d| admits(salt, d, 1000)).collect() };
        let (a, b) = (pick(b"salt-a"), pick(b"salt-b"));
        let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
        let in_a = a.iter().filter(|x| **x).count();
        assert!(both < in_a / 4, "{both} of {in_a} devices were first under both salts");
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
