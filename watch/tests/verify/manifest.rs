//! `verify_manifest`: each check refuses what it names and nothing else.

use nowatch_ota_watch::{
    ChannelFacts, Check, ChunkSpec, DeviceFacts, Rejection, TrustedKey, Version, verify_manifest,
};
use serde_json::{Value, json};

use crate::helpers::*;

/// The check that refuses `body` signed by the trusted key, for `device` at `now`.
fn refusal(body: &Value, device: &DeviceFacts<'_>, now: u64) -> Option<&'static str> {
    refusal_of(&signed(body), device, now)
}

/// The check that refuses the signed bytes `s` (JSON canonical_json cannot write, such as
/// floats), signed by the trusted key.
fn refusal_of(s: &str, device: &DeviceFacts<'_>, now: u64) -> Option<&'static str> {
    let envelope = envelope_of(s, &[&signer(1)]);
    verify_manifest(envelope.as_bytes(), &keys(), device, now).err().map(|r| r.check.name())
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn without(mut body: Value, key: &str) -> Value {
    body.as_object_mut().unwrap().remove(key);
    body
}

#[test]
fn a_spec_1_0_manifest_verifies_and_gives_its_fields() {
    let image = image(10_000, 1);
    let body = body_v10(&image);
    let envelope = envelope(&body);
    let manifest = verify_manifest(envelope.as_bytes(), &keys(), &device(), NOW).unwrap();
    assert_eq!(manifest.firmware_id, "0b6f3f7e-8a52-4c3e-9d0e-3f1f6c2a9b11");
    assert_eq!(manifest.version.as_str(), "2.1.0");
    assert_eq!(manifest.channel, "beta");
    assert_eq!(manifest.size, 10_000);
    assert_eq!(manifest.sha256, sha256(&image));
    assert!(!manifest.mandatory);
    assert_eq!(manifest.expires_at, 1_782_864_000);
    assert_eq!(manifest.chunks, None);
}

#[test]
fn a_spec_1_1_manifest_gives_its_chunk_table() {
    let image = image(10_000, 2);
    let envelope = envelope(&body_v11(&image, 4096));
    let manifest = verify_manifest(envelope.as_bytes(), &keys(), &device(), NOW).unwrap();
    let table_sha256 = sha256(&table(&image, 4096));
    assert_eq!(manifest.chunks, Some(ChunkSpec { chunk_size: 4096, table_sha256, count: 3 }));
}

#[test]
fn each_check_refuses_what_it_names_and_nothing_else() {
    let image = image(5000, 3);
    let ok = body_v11(&image, 1024);
    let d = device();
    assert_eq!(refusal(&ok, &d, NOW), None);
    let v = |s| Version::parse(s).unwrap();
    let cases: Vec<(&str, Value, DeviceFacts<'_>, u64)> = vec![
        ("type", with(ok.clone(), "type", json!("nowatch-root")), d, NOW),
        ("type", without(ok.clone(), "type"), d, NOW),
        ("expiry", ok.clone(), d, 1_782_864_000),
        ("expiry", ok.clone(), d, u64::MAX),
        ("expiry", with(ok.clone(), "expires_at", json!("2026-07-01T00:00:00+00:00")), d, NOW),
        ("expiry", with(ok.clone(), "expires_at", json!("2026-02-30T00:00:00Z")), d, NOW),
        ("hardware", ok.clone(), DeviceFacts { hardware: "nw-watch-b2", ..d }, NOW),
        ("hardware", with(ok.clone(), "hardware", json!(["nw-watch-a1", "nw-watch-b2"])), d, NOW),
        ("hardware", with(ok.clone(), "hardware", json!([])), d, NOW),
        ("hardware", with(ok.clone(), "hardware", json!("nw-watch-a1")), d, NOW),
        (
            "channel",
            ok.clone(),
            DeviceFacts { channel: Some(ChannelFacts { channel: "stable", order: CHANNELS }), ..d },
            NOW,
        ),
        (
            "channel",
            ok.clone(),
            DeviceFacts { channel: Some(ChannelFacts { channel: "nightly", order: CHANNELS }), ..d },
            NOW,
        ),
        ("channel", with(ok.clone(), "channel", json!("nightly")), d, NOW),
        ("channel", without(ok.clone(), "channel"), DeviceFacts { channel: None, ..d }, NOW),
        ("newer", ok.clone(), DeviceFacts { current_version: v("2.1.0"), ..d }, NOW),
        ("newer", ok.clone(), DeviceFacts { current_version: v("2.1.0+build.7"), ..d }, NOW),
        ("newer", ok.clone(), DeviceFacts { current_version: v("3.0.0-rc.1"), ..d }, NOW),
        ("newer", with(ok.clone(), "version", json!("v2.1.0")), d, NOW),
        ("min_from_version", ok.clone(), DeviceFacts { current_version: v("2.0.0-rc.1"), ..d }, NOW),
        ("min_from_version", with(ok.clone(), "min_from_version", json!("2.0")), d, NOW),
        ("min_from_version", with(ok.clone(), "min_from_version", json!(2)), d, NOW),
        ("floor", with(ok.clone(), "min_version", json!("2.2.0")), d, NOW),
        ("floor", ok.clone(), DeviceFacts { floor: Some(v("2.1.1")), ..d }, NOW),
        ("floor", with(ok.clone(), "min_version", json!("latest")), d, NOW),
        ("image", with(ok.clone(), "size", json!(-1)), d, NOW),
        ("image", with(ok.clone(), "sha256", json!(hex(&sha256(&image)).to_uppercase())), d, NOW),
        ("image", without(ok.clone(), "firmware_id"), d, NOW),
        ("image", with(ok.clone(), "mandatory", json!("no")), d, NOW),
        ("chunk_table", without(ok.clone(), "chunk_size"), d, NOW),
        ("chunk_table", without(ok.clone(), "chunk_table_sha256"), d, NOW),
        ("chunk_table", with(ok.clone(), "chunk_size", json!(1000)), d, NOW),
        ("chunk_table", with(ok.clone(), "chunk_size", json!(256)), d, NOW),
        ("chunk_table", with(ok.clone(), "chunk_size", json!(131072)), d, NOW),
        ("chunk_table", with(ok.clone(), "chunk_table_sha256", json!("00")), d, NOW),
    ];
    for (check, body, device, now) in &cases {
        assert_eq!(refusal(body, device, *now), Some(*check), "{}", signed(body));
    }
    let float_size = signed(&ok).replace(r#""size":5000"#, r#""size":5000.0"#);
    assert_eq!(refusal_of(&float_size, &d, NOW), Some("image"), "{float_size}");
    let float_chunk = signed(&ok).replace(r#""chunk_size":1024"#, r#""chunk_size":1024e0"#);
    assert_eq!(refusal_of(&float_chunk, &d, NOW), Some("chunk_table"), "{float_chunk}");
    // Every check from type to chunk_table is named at least once here; signature has tests of
    // its own below, image and chunk in chunks.rs.
    for check in &Check::ALL[1..10] {
        assert!(cases.iter().any(|c| c.0 == check.name()), "{check} is not tested");
    }
}

#[test]
fn facts_the_device_does_not_give_skip_their_checks() {
    let body = with(body_v10(&image(10, 4)), "channel", json!("alpha"));
    assert_eq!(refusal(&body, &device(), NOW), Some("channel"));
    let d = DeviceFacts { channel: None, floor: None, ..device() };
    assert_eq!(refusal(&body, &d, NOW), None);
    let no_floors = with(with(body, "min_version", Value::Null), "min_from_version", Value::Null);
    assert_eq!(refusal(&no_floors, &d, NOW), None);
    assert_eq!(refusal(&without(without(no_floors, "min_version"), "min_from_version"), &d, NOW), None);
}

#[test]
fn the_first_failing_check_in_spec_order_is_the_one_named() {
    let body = with(with(body_v10(&image(10, 5)), "hardware", json!(["other"])), "version", json!("1.0.0"));
    assert_eq!(refusal(&body, &device(), NOW), Some("hardware"));
    assert_eq!(refusal(&body, &device(), u64::MAX), Some("expiry"));
    let body = with(body, "type", json!("x"));
    assert_eq!(refusal(&body, &device(), u64::MAX), Some("type"));
}

#[test]
fn unknown_keys_and_unread_keys_are_ignored() {
    let body =
        with(body_v11(&image(3000, 6), 512), "future", json!({"a": [1, {"b": [null, true]}], "c": -25}));
    let body = with(with(body, "release_signature", json!("AAAA")), "spec_version", json!("1.7"));
    assert_eq!(refusal(&body, &device(), NOW), None);
    let floats = signed(&body).replace("-25", "-2.5e3");
    assert_eq!(refusal_of(&floats, &device(), NOW), None, "{floats}");
}

#[test]
fn hardware_and_channel_compare_after_unescaping() {
    let body =
        with(with(body_v10(&image(10, 7)), "hardware", json!(["nw\"a\u{1}é"])), "channel", json!("b\\eta"));
    let channels = ["stable", "b\\eta"];
    let d = DeviceFacts {
        hardware: "nw\"a\u{1}é",
        channel: Some(ChannelFacts { channel: "b\\eta", order: &channels }),
        ..device()
    };
    assert!(signed(&body).contains(r#"["nw\"a\u0001é"]"#));
    assert_eq!(refusal(&body, &d, NOW), None);
    assert_eq!(refusal(&body, &DeviceFacts { hardware: "nw\"a\u{1}e", ..d }, NOW), Some("hardware"));
}

fn verify(envelope: &str) -> Result<(), Rejection> {
    verify_manifest(envelope.as_bytes(), &keys(), &device(), NOW).map(|_| ())
}

fn signature_refusal(envelope: &str) -> Option<&'static str> {
    verify(envelope).err().map(|r| r.check.name())
}

#[test]
fn a_tampered_signed_byte_is_refused_by_the_signature_check() {
    let s = signed(&body_v10(&image(100, 8)));
    let good = envelope_of(&s, &[&signer(1)]);
    assert_eq!(verify(&good), Ok(()));
    let start = good.find(&s).unwrap();
    for at in start..start + s.len() {
        let mut bytes = good.clone().into_bytes();
        bytes[at] ^= 0x01;
        let Ok(text) = String::from_utf8(bytes) else { continue };
        assert_eq!(signature_refusal(&text), Some("signature"), "byte {at}: {text}");
    }
    // Re-serialised with whitespace, <S> is other bytes: the signature covers bytes, not meaning.
    let spaced = good.replacen(r#"{"channel":"#, r#"{ "channel":"#, 1);
    assert_eq!(signature_refusal(&spaced), Some("signature"));
}

#[test]
fn whitespace_and_member_order_in_the_envelope_are_accepted() {
    let s = signed(&body_v10(&image(100, 9)));
    let k = signer(1);
    let sig = k.sign(s.as_bytes());
    let id = k.key_id();
    for text in [
        format!(
            " {{ \"signed\" :\n{s} ,\t\"signatures\" : [ {{ \"key_id\" : \"{id}\" , \"sig\" : \"{sig}\" }} ] }}\r\n"
        ),
        format!(
            r#"{{"signatures":[{{"sig":"{sig}","key_id":"{id}","note":1}}],"extra":{{"x":[]}},"signed":{s}}}"#
        ),
    ] {
        assert_eq!(verify(&text), Ok(()), "{text}");
    }
}

#[test]
fn two_signatures_where_only_the_second_is_trusted_verify() {
    let s = signed(&body_v10(&image(100, 10)));
    let envelope = envelope_of(&s, &[&signer(2), &signer(1)]);
    assert_eq!(verify(&envelope), Ok(()));
    // The first key's id with the second's signature: the first entry fails, the second passes.
    let k1 = signer(1);
    let forged = format!(
        r#"{{"signed":{s},"signatures":[{{"key_id":"{}","sig":"{}"}},{{"key_id":"{}","sig":"{}"}}]}}"#,
        k1.key_id(),
        signer(2).sign(s.as_bytes()),
        k1.key_id(),
        k1.sign(s.as_bytes())
    );
    assert_eq!(verify(&forged), Ok(()));
    // Trusting only the other key: refused.
    let only_two = [trusted(2)];
    let by_one = envelope_of(&s, &[&signer(1)]);
    let refused = verify_manifest(by_one.as_bytes(), &only_two, &device(), NOW).unwrap_err();
    assert_eq!(refused.check, Check::Signature);
    let none: [TrustedKey; 0] = [];
    assert!(verify_manifest(envelope.as_bytes(), &none, &device(), NOW).is_err());
}

#[test]
fn envelopes_that_are_not_as_served_are_refused_by_the_signature_check() {
    let s = signed(&body_v10(&image(100, 11)));
    let k = signer(1);
    let (id, sig) = (k.key_id().to_owned(), k.sign(s.as_bytes()));
    let entry = format!(r#"{{"key_id":"{id}","sig":"{sig}"}}"#);
    for text in [
        String::new(),
        "null".to_owned(),
        format!(r#"{{"signed":{s}}}"#),
        format!(r#"{{"signatures":[{entry}]}}"#),
        format!(r#"{{"signed":{s},"signatures":[]}}"#),
        format!(r#"{{"signed":{s},"signatures":[{entry}],"signed":{s}}}"#),
        format!(r#"{{"signed":{s},"signatures":[{entry}]}} x"#),
        format!(r#"{{"signed":{s},"signatures":[{entry}]"#),
        format!(r#"{{"signed":"{}","signatures":[{entry}]}}"#, s.replace('"', "\\\"")),
        format!(r#"{{"signed":{s},"signatures":[{{"key_id":"{}","sig":"{sig}"}}]}}"#, id.to_uppercase()),
        format!(
            r#"{{"signed":{s},"signatures":[{{"key_id":"{id}","sig":"{}"}}]}}"#,
            sig.trim_end_matches('=')
        ),
        format!(r#"{{"signed":{s},"signatures":[{{"key_id":"{id}","sig":"{sig}","sig":"{sig}"}}]}}"#),
        format!(r#"{{"signed":{s},"signatures":[{entry},]}}"#),
        // An escaped key is the same key: `signed` twice.
        format!(r#"{{"signed":{s},"signatures":[{entry}],"sign\u0065d":{{}}}}"#),
    ] {
        assert_eq!(signature_refusal(&text), Some("signature"), "{text}");
    }
}

#[test]
fn a_signed_body_that_is_not_a_manifest_object_is_refused_by_the_type_check() {
    let k = signer(1);
    let obj = |s: &str| envelope_of(s, &[&k]);
    let body = signed(&body_v10(&image(10, 12)));
    let repeated = body.replacen('{', r#"{"type":"nowatch-firmware-manifest","#, 1);
    let escaped = body.replacen('{', r#"{"typ\u0065":"nowatch-firmware-manifest","#, 1);
    // (A `signed` that is not an object at all is an envelope not as served: `signature`.)
    for s in [repeated, escaped, "{}".to_owned()] {
        assert_eq!(signature_refusal(&obj(&s)), Some("type"), "{s}");
    }
}
