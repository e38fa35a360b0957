//! A watch in the tests (issue 22, item 4): the phone fetches a release from the real service,
//! the image with `Range` resumption over a connection this test cuts, and relays manifest,
//! chunk table and image to a watch over a simulated Bluetooth LE link of 244-byte pieces that
//! drops and corrupts pieces. The watch verifies with `nowatch-ota-watch` (the `no_std` crate a
//! watch runs), rejects exactly the corrupted chunks and asks for them again, resumes after a
//! drop at the first chunk it misses, and installs only an image whose manifest, table and
//! chunks all verify. Bytes re-sent over the link are counted and asserted.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use nowatch_ota_watch::{
    ChunkVerdict, DeviceFacts, ImageCheck, ImageDigest, Manifest, Rejection, TableCheck, TrustedKey, Version,
    bitmap_len, verify_manifest,
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, image_bytes, manifest_public_keys, publish, sha256_hex, spawn_app, upload_ok};

const HW: &str = "nw-s1";
/// A BLE 5 link's usual payload per write.
const MTU: usize = 244;
const MIB: usize = 1024 * 1024;

/// What the phone holds after its downloads.
struct Fetched {
    manifest: Vec<u8>,
    table: Vec<u8>,
    image: Vec<u8>,
    /// Connections the phone's download needed (each cut one resumed with Range + If-Range).
    connections: usize,
}

/// The phone's side with the service: manifest and table as served, the image read `cut` bytes
/// per connection (the connection dropped after that, mid-body), resumed with `Range` and
/// `If-Range` until whole.
async fn phone_fetches(app: &TestApp, id: &str, hardware: &str, cut: usize) -> Fetched {
    let token = app.user_token();
    let get = |path: String| app.get(&path).bearer_auth(&token).send();
    let manifest = get(format!("/v1/firmware/{id}/manifest?hardware={hardware}")).await.unwrap();
    assert_eq!(manifest.status(), 200);
    let manifest = manifest.bytes().await.unwrap().to_vec();
    let table = get(format!("/v1/firmware/{id}/chunks")).await.unwrap();
    assert_eq!(table.status(), 200);
    let table = table.bytes().await.unwrap().to_vec();
    let (mut image, mut connections, mut etag) = (Vec::new(), 0, None::<String>);
    loop {
        let mut request = app.get(&format!("/v1/firmware/{id}/download")).bearer_auth(&token);
        if let Some(etag) = &etag {
            request = request.header("Range", format!("bytes={}-", image.len())).header("If-Range", etag);
        }
        let response = request.send().await.unwrap();
        connections += 1;
        let expected = if etag.is_some() { 206 } else { 200 };
        assert_eq!(response.status(), expected, "a resume continues where the last connection stopped");
        etag = Some(response.headers()["etag"].to_str().unwrap().to_owned());
        let total: usize = match response.headers().get("content-range") {
            Some(range) => range.to_str().unwrap().rsplit('/').next().unwrap().parse().unwrap(),
            None => response.content_length().unwrap() as usize,
        };
        let mut body = response.bytes_stream();
        let mut this_connection = 0;
        while let Some(piece) = body.next().await {
            let piece = piece.unwrap();
            let take = piece.len().min(cut - this_connection);
            image.extend_from_slice(&piece[..take]);
            this_connection += take;
            if this_connection == cut {
                break; // the link drops: the rest of this response is never read
            }
        }
        drop(body);
        if image.len() == total {
            return Fetched { manifest, table, image, connections };
        }
    }
}

/// The Bluetooth LE link between phone and watch: writes of [`MTU`] bytes, numbered from 0 over
/// the whole relay; the pieces numbered in `corrupt` arrive with one bit flipped (once: the
/// piece is clean when sent again), and the link drops after the writes numbered in `drops`.
#[derive(Default)]
struct Link {
    corrupt: BTreeSet<usize>,
    drops: BTreeSet<usize>,
    writes: usize,
    bytes: usize,
}

enum Sent {
    Delivered(Vec<u8>),
    Dropped,
}

impl Link {
    /// Sends `bytes` in pieces; what reached the other side, or that the link dropped.
    fn send(&mut self, bytes: &[u8]) -> Sent {
        let mut arrived = Vec::with_capacity(bytes.len());
        for piece in bytes.chunks(MTU) {
            let n = self.writes;
            self.writes += 1;
            self.bytes += piece.len();
            let mut piece = piece.to_vec();
            if self.corrupt.remove(&n) {
                let middle = piece.len() / 2;
                piece[middle] ^= 0x10;
            }
            arrived.extend_from_slice(&piece);
            if self.drops.remove(&n) {
                return Sent::Dropped;
            }
        }
        Sent::Delivered(arrived)
    }
}

/// The watch: what it knows of itself and the key it was built with.
struct Watch {
    keys: Vec<TrustedKey>,
    hardware: &'static str,
    current: &'static str,
    floor: Option<&'static str>,
    now_unix: u64,
}

/// How a relay ended.
#[derive(Debug)]
struct Relay {
    /// The image the watch installed, if it installed one.
    installed: Option<Vec<u8>>,
    /// The check that refused, if one did.
    refused: Option<&'static str>,
    rejected_chunks: Vec<u32>,
    link_bytes: usize,
    sessions: usize,
}

impl Watch {
    fn facts(&self) -> DeviceFacts<'_> {
        DeviceFacts {
            hardware: self.hardware,
            current_version: Version::parse(self.current).unwrap(),
            channel: None,
            floor: self.floor.map(|f| Version::parse(f).unwrap()),
        }
    }

    fn manifest<'m>(&self, bytes: &'m [u8]) -> Result<Manifest<'m>, Rejection> {
        verify_manifest(bytes, &self.keys, &self.facts(), self.now_unix)
    }

    /// The whole relay: the manifest, the table, then every chunk the watch misses, session after
    /// session (a drop ends one; the next starts at the first chunk missing), each rejected chunk
    /// asked for again. The phone's copies are `phone_table` and `phone_image` (the table the
    /// phone relays may differ from the one the service served, to play a tampering phone).
    fn relay(&self, manifest: &[u8], phone_table: &[u8], phone_image: &[u8], link: &mut Link) -> Relay {
        let mut relay =
            Relay { installed: None, refused: None, rejected_chunks: Vec::new(), link_bytes: 0, sessions: 1 };
        let refused = |mut relay: Relay, link: &Link, rejection: Rejection| {
            relay.refused = Some(rejection.check.name());
            relay.link_bytes = link.bytes;
            relay
        };
        let Sent::Delivered(manifest) = link.send(manifest) else { panic!("no drop planned here") };
        let manifest = match self.manifest(&manifest) {
            Ok(m) => m,
            Err(e) => return refused(relay, link, e),
        };
        let spec = manifest.chunks.expect("a spec 1.1 manifest");
        let Sent::Delivered(table) = link.send(phone_table) else { panic!("no drop planned here") };
        let mut table_check = TableCheck::new(&manifest).unwrap();
        table_check.feed(&table);
        let verified = match table_check.finish() {
            Ok(t) => t,
            Err(e) => return refused(relay, link, e),
        };
        // The watch's flash: the image as it arrives, the table, one bit per chunk.
        let mut flash = vec![0u8; manifest.size as usize];
        let mut bitmap = vec![0u8; bitmap_len(spec.count)];
        let mut image = ImageCheck::new(verified, table.as_slice(), &mut bitmap).unwrap();
        let size = spec.chunk_size as usize;
        while let Some(index) = image.next_missing() {
            let at = index as usize * size;
            let chunk = &phone_image[at..(at + size).min(phone_image.len())];
            match link.send(chunk) {
                Sent::Dropped => relay.sessions += 1,
                Sent::Delivered(bytes) => match image.check_chunk(index, &bytes) {
                    ChunkVerdict::Accepted => flash[at..at + bytes.len()].copy_from_slice(&bytes),
                    ChunkVerdict::Rejected(_) => relay.rejected_chunks.push(index),
                },
            }
        }
        image.finish().unwrap();
        // Belt and braces, as an installer would: the whole image against the manifest's digest.
        let mut whole = ImageDigest::new(&manifest);
        whole.feed(&flash).unwrap();
        whole.finish().unwrap();
        relay.installed = Some(flash);
        relay.link_bytes = link.bytes;
        relay
    }
}

async fn trusted_keys(app: &TestApp) -> Vec<TrustedKey> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let keys = manifest_public_keys(app).await;
    keys.iter().map(|k| TrustedKey::new(b64.decode(k).unwrap().try_into().unwrap())).collect()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A published 1 MiB release (plus a short last chunk) on `hardware`, and a watch running 1.0.0.
async fn setup(app: &TestApp, hardware: &str) -> (String, Vec<u8>, Watch) {
    let image = image_bytes(9, MIB + 1000);
    let release = upload_ok(app, "1.1.0", &[hardware], image.clone()).await;
    let id = release["id"].as_str().unwrap().to_owned();
    publish(app, &id, json!({"channel": "stable"})).await;
    let watch = Watch {
        keys: trusted_keys(app).await,
        hardware: HW,
        current: "1.0.0",
        floor: None,
        now_unix: now_unix(),
    };
    (id, image, watch)
}

/// The number of piece `piece` of the relay's chunk send number `send`, when every send before
/// it was a whole 4096-byte chunk (17 pieces: 16 of 244 bytes and one of 192) and the manifest's
/// and the table's pieces came first.
fn piece_of_send(first_chunk_piece: usize, send: usize, piece: usize) -> usize {
    first_chunk_piece + send * 4096usize.div_ceil(MTU) + piece
}

fn pieces(len: usize) -> usize {
    len.div_ceil(MTU)
}

#[tokio::test]
async fn a_relay_over_a_lossy_link_resends_only_the_corrupted_chunks_and_installs_the_image() {
    let app = spawn_app().await;
    let (id, image, watch) = setup(&app, HW).await;
    let fetched = phone_fetches(&app, &id, HW, 300_000).await;
    assert_eq!(fetched.image, image, "the phone's resumed download is the image");
    assert_eq!(fetched.connections, 4, "1 MiB read 300 kB a connection");

    let first = pieces(fetched.manifest.len()) + pieces(fetched.table.len());
    // Sends in order: chunk 3 is corrupted at its first send (send 3) and at its retry (send 4),
    // so chunk c > 3 goes as send c + 2: chunk 100 as send 102, corrupted too, so chunk c > 100
    // goes as send c + 3: the short last one (256) as 259.
    let corrupt = [(3, 5), (4, 0), (102, 16), (259, 0)];
    let mut link = Link {
        corrupt: corrupt.into_iter().map(|(send, piece)| piece_of_send(first, send, piece)).collect(),
        ..Link::default()
    };
    let relay = watch.relay(&fetched.manifest, &fetched.table, &fetched.image, &mut link);
    assert_eq!(relay.refused, None);
    assert_eq!(relay.rejected_chunks, vec![3, 3, 100, 256], "exactly the corrupted chunks, each time");
    assert_eq!(relay.installed.as_deref(), Some(image.as_slice()), "the image installed is the release");
    let resent = relay.link_bytes - fetched.manifest.len() - fetched.table.len() - image.len();
    assert_eq!(resent, 3 * 4096 + 1000, "re-sent: chunk 3 twice, chunk 100, the 1000-byte last chunk");
}

#[tokio::test]
async fn a_relay_cut_in_the_middle_resumes_at_the_first_missing_chunk() {
    let app = spawn_app().await;
    let (id, image, watch) = setup(&app, HW).await;
    let fetched = phone_fetches(&app, &id, HW, 500_000).await;
    let first = pieces(fetched.manifest.len()) + pieces(fetched.table.len());
    // The link drops twice, 7 and 12 pieces into chunks 40 (send 40) and 180 (send 181: chunk 40
    // went again first; the cut send 40 had 10 pieces fewer than a whole chunk).
    let drops = [piece_of_send(first, 40, 6), piece_of_send(first, 181, 11) - 10];
    let mut link = Link { drops: drops.into_iter().collect(), ..Link::default() };
    let relay = watch.relay(&fetched.manifest, &fetched.table, &fetched.image, &mut link);
    assert_eq!(relay.installed.as_deref(), Some(image.as_slice()));
    assert_eq!(relay.sessions, 3);
    assert!(relay.rejected_chunks.is_empty());
    let resent = relay.link_bytes - fetched.manifest.len() - fetched.table.len() - image.len();
    assert_eq!(resent, (7 + 12) * MTU, "only the pieces of the two chunks in flight when the link dropped");
}

#[tokio::test]
async fn the_watch_installs_nothing_from_a_tampered_table_a_manifest_for_other_hardware_an_expired_one_or_one_below_its_floor()
 {
    let app = spawn_app().await;
    let (id, image, watch) = setup(&app, HW).await;
    let fetched = phone_fetches(&app, &id, HW, usize::MAX).await;
    assert_eq!(fetched.connections, 1);

    let mut table = fetched.table.clone();
    table[32 * 7 + 3] ^= 1;
    let relay = watch.relay(&fetched.manifest, &table, &image, &mut Link::default());
    assert_eq!((relay.refused, relay.installed.is_none()), (Some("chunk_table"), true), "a tampered table");

    let mut manifest = fetched.manifest.clone();
    let at = manifest.windows(5).position(|w| w == b"1.1.0").unwrap();
    manifest[at + 4] = b'9';
    let relay = watch.relay(&manifest, &fetched.table, &image, &mut Link::default());
    assert_eq!(relay.refused, Some("signature"), "a manifest edited by the phone");

    let expired = Watch { now_unix: manifest_expiry(&fetched.manifest) + 1, ..watch_like(&watch) };
    let relay = expired.relay(&fetched.manifest, &fetched.table, &image, &mut Link::default());
    assert_eq!(relay.refused, Some("expiry"), "an expired manifest");

    let floored = Watch { floor: Some("1.2.0"), ..watch_like(&watch) };
    let relay = floored.relay(&fetched.manifest, &fetched.table, &image, &mut Link::default());
    assert_eq!(relay.refused, Some("floor"), "a version below the watch's floor");

    // A release for another hardware id, relayed to this watch.
    let other = image_bytes(10, 50_000);
    let release = upload_ok(&app, "1.1.0", &["nw-s2"], other.clone()).await;
    let other_id = release["id"].as_str().unwrap().to_owned();
    publish(&app, &other_id, json!({"channel": "stable"})).await;
    let fetched = phone_fetches(&app, &other_id, "nw-s2", usize::MAX).await;
    let relay = watch.relay(&fetched.manifest, &fetched.table, &other, &mut Link::default());
    assert_eq!(
        (relay.refused, relay.installed.is_none()),
        (Some("hardware"), true),
        "another hardware's manifest"
    );
}

fn watch_like(watch: &Watch) -> Watch {
    Watch {
        keys: watch.keys.clone(),
        hardware: watch.hardware,
        current: watch.current,
        floor: watch.floor,
        now_unix: watch.now_unix,
    }
}

fn manifest_expiry(manifest: &[u8]) -> u64 {
    let envelope: Value = serde_json::from_slice(manifest).unwrap();
    let text = envelope["signed"]["expires_at"].as_str().unwrap();
    nowatch_ota_watch::parse_utc(text).unwrap()
}

/// BENCHMARKS.md's figures (issue 22, item 5): for a 1 MiB image, the bytes sent again over the
/// link after one corrupted piece with the chunk table (its chunk) and without it (a spec 1.0
/// watch finds the bad byte only from the whole image's SHA-256 and asks for all of it again),
/// and the table's overhead.
#[tokio::test]
async fn one_corrupted_piece_costs_one_chunk_with_the_table_and_the_whole_image_without() {
    let app = spawn_app().await;
    let image = image_bytes(11, MIB);
    let release = upload_ok(&app, "1.1.0", &[HW], image.clone()).await;
    let id = release["id"].as_str().unwrap().to_owned();
    publish(&app, &id, json!({"channel": "stable"})).await;
    let watch = Watch {
        keys: trusted_keys(&app).await,
        hardware: HW,
        current: "1.0.0",
        floor: None,
        now_unix: now_unix(),
    };
    let fetched = phone_fetches(&app, &id, HW, usize::MAX).await;
    let first = pieces(fetched.manifest.len()) + pieces(fetched.table.len());
    let mut link = Link { corrupt: [piece_of_send(first, 128, 8)].into_iter().collect(), ..Link::default() };
    let relay = watch.relay(&fetched.manifest, &fetched.table, &image, &mut link);
    let with_table = relay.link_bytes - fetched.manifest.len() - fetched.table.len() - image.len();
    assert_eq!(with_table, 4096);
    assert_eq!(fetched.table.len(), 8192, "the table: 32 bytes per 4 KiB chunk, 8 KiB per MiB");

    // Without a table: the image whole, checked at its end, then all of it again.
    let manifest = watch.manifest(&fetched.manifest).unwrap();
    let mut link = Link { corrupt: [128 * 17 + 8].into_iter().collect(), ..Link::default() };
    let mut sent_images = 0;
    let installed = loop {
        let Sent::Delivered(bytes) = link.send(&image) else { unreachable!() };
        sent_images += 1;
        let mut whole = ImageDigest::new(&manifest);
        if whole.feed(&bytes).is_ok() && whole.finish().is_ok() {
            break bytes;
        }
    };
    assert_eq!((installed == image, sent_images), (true, 2));
    let without_table = link.bytes - image.len();
    assert_eq!(without_table, MIB);
    println!(
        "relay of 1 MiB, one corrupted piece: re-sent {with_table} bytes with the chunk table, {without_table} without; table {} bytes per MiB; sha256 {}",
        fetched.table.len(),
        &sha256_hex(&image)[..12]
    );
}
