//! The hash chain of a rollout's audit trail, one rule for everything that appends or checks it
//! (the service, and migrations that record what they changed).
//!
//! `hash = hex(sha256(prev_hash ‖ canonical_json(event)))`, where `prev_hash` is the previous
//! link's hash as 64 hex characters ([`GENESIS_HASH`] for the first) and `event` is
//! `{rollout_id, seq, actor, kind, detail, created_at}` with `created_at` in RFC 3339 with
//! milliseconds. Stored timestamps keep milliseconds, so anyone holding the events can recompute
//! the chain.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{CanonicalJsonError, canonical_json};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event's fields, as hashed.
#[derive(Debug, Clone, Copy)]
pub struct ChainEvent<'a> {
    pub rollout_id: &'a str,
    pub seq: i32,
    pub actor: &'a str,
    pub kind: &'a str,
    pub detail: &'a Value,
    pub created_at: DateTime<Utc>,
}

/// The hash of `event` linked to `prev_hash`.
pub fn event_hash(prev_hash: &str, event: &ChainEvent<'_>) -> Result<String, CanonicalJsonError> {
    let body = canonical_json(&json!({
        "rollout_id": event.rollout_id,
        "seq": event.seq,
        "actor": event.actor,
        "kind": event.kind,
        "detail": event.detail,
        "created_at": event.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    }))?;
    Ok(hex::encode(Sha256::new().chain_update(prev_hash.as_bytes()).chain_update(body).finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_depends_on_every_field_and_on_the_link_before() {
        let detail = json!({"reason": "x"});
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.123Z").unwrap().with_timezone(&Utc);
        let event = ChainEvent {
            rollout_id: "r",
            seq: 1,
            actor: "a",
            kind: "created",
            detail: &detail,
            created_at: at,
        };
        let first = event_hash(GENESIS_HASH, &event).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(first, event_hash(GENESIS_HASH, &event).unwrap());
        assert_ne!(first, event_hash(&first, &event).unwrap());
        assert_ne!(first, event_hash(GENESIS_HASH, &ChainEvent { seq: 2, ..event }).unwrap());
        assert_ne!(first, event_hash(GENESIS_HASH, &ChainEvent { kind: "aborted", ..event }).unwrap());
    }
}
