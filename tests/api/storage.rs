//! The same storage suite against both backends: the filesystem and a real S3-compatible
//! server (s3s-fs, which checks SigV4 signatures and presigned expiry).

use std::time::Duration;

use bytes::Bytes;
use nowatch_ota::config::Settings;
use nowatch_ota::domain::Sha256Digest;
use nowatch_ota::storage::{BlobStore, ByteRange, ObjectKey, StorageError};

use crate::helpers::{base_env, fresh_bucket, image_bytes, read_all, s3_env, sha256_hex};

async fn fs_store(dir: &tempfile::TempDir) -> BlobStore {
    let mut env = base_env(dir).await;
    env.retain(|k, _| !k.starts_with("NOWATCH_OTA__STORAGE__"));
    env.insert("NOWATCH_OTA__STORAGE__FS__ROOT".into(), dir.path().join("blobs").display().to_string());
    BlobStore::from_settings(&Settings::load_from(env).unwrap().storage).await.unwrap()
}

async fn s3_store(dir: &tempfile::TempDir) -> BlobStore {
    let mut env = base_env(dir).await;
    env.extend(s3_env(&fresh_bucket().await));
    // A small part size, so that a 17 MiB stream is a real multipart upload.
    env.insert("NOWATCH_OTA__STORAGE__S3__PART_SIZE_BYTES".into(), (5 << 20).to_string());
    BlobStore::from_settings(&Settings::load_from(env).unwrap().storage).await.unwrap()
}

fn chunks(
    bytes: &[u8],
    size: usize,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    let owned: Vec<Result<Bytes, std::io::Error>> =
        bytes.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures_util::stream::iter(owned)
}

async fn the_suite(store: BlobStore) {
    let _gate = crate::helpers::MemoryGate::enter().await;
    // A stream larger than 16 MiB, in uneven chunks, hashed and sized on the way.
    let bytes = image_bytes(42, (17 << 20) + 12345);
    let staged = store.put_staging(chunks(&bytes, 1 << 19), u64::MAX).await.unwrap();
    assert_eq!(staged.size, bytes.len() as u64);
    assert_eq!(staged.sha256.to_hex(), sha256_hex(&bytes));
    assert_eq!(store.list("staging/").await.unwrap().len(), 1);

    let key = ObjectKey::Firmware(staged.sha256);
    store.promote(&staged.key, &key).await.unwrap();
    assert!(store.list("staging/").await.unwrap().is_empty());
    let listed = store.list("firmware/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, key.to_string());
    assert_eq!(listed[0].size, bytes.len() as u64);
    assert_eq!(store.size(&key).await.unwrap(), Some(bytes.len() as u64));

    assert_eq!(read_all(store.open(&key, None).await.unwrap()).await, bytes);
    let range = ByteRange { start: 5 << 20, end: (11 << 20) + 7 };
    let part = read_all(store.open(&key, Some(range)).await.unwrap()).await;
    assert_eq!(part, bytes[range.start as usize..=range.end as usize]);
    let last = ByteRange { start: bytes.len() as u64 - 1, end: bytes.len() as u64 - 1 };
    assert_eq!(read_all(store.open(&key, Some(last)).await.unwrap()).await, [bytes[bytes.len() - 1]]);

    // Over the limit: refused, and nothing is left in staging.
    let refused = store.put_staging(chunks(&bytes[..3_000_000], 65536), 2_000_000).await;
    assert!(matches!(refused, Err(StorageError::TooLarge(2_000_000))), "{refused:?}");
    // A failing source stream: refused as the client's fault, nothing left.
    let failing =
        futures_util::stream::iter(vec![Ok(Bytes::from_static(b"abc")), Err(std::io::Error::other("reset"))]);
    assert!(matches!(store.put_staging(failing, u64::MAX).await, Err(StorageError::Client(_))));
    assert!(store.list("staging/").await.unwrap().is_empty());

    // The sweep takes old staging objects only.
    store.put_staging(chunks(b"abandoned", 4), u64::MAX).await.unwrap();
    assert_eq!(store.sweep_staging(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(store.sweep_staging(Duration::ZERO).await.unwrap(), 1);
    assert!(store.list("staging/").await.unwrap().is_empty());
    assert_eq!(store.list("firmware/").await.unwrap().len(), 1);

    let missing = ObjectKey::Firmware(Sha256Digest::from_bytes([0; 32]));
    assert!(matches!(store.open(&missing, None).await, Err(StorageError::NotFound(_))));
    assert_eq!(store.size(&missing).await.unwrap(), None);

    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(store.list("firmware/").await.unwrap().is_empty());
    store.check().await.unwrap();
}

#[tokio::test]
async fn the_filesystem_store_passes_the_storage_suite() {
    let dir = tempfile::tempdir().unwrap();
    the_suite(fs_store(&dir).await).await;
}

#[tokio::test]
async fn a_file_cut_short_on_disk_gives_an_error_never_a_short_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(&dir).await;
    let bytes = image_bytes(7, (1 << 20) + 100);
    let staged = store.put_staging(chunks(&bytes, 1 << 16), u64::MAX).await.unwrap();
    let key = ObjectKey::Firmware(staged.sha256);
    store.promote(&staged.key, &key).await.unwrap();
    let path = dir.path().join("blobs").join(key.to_string());
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(700_000).unwrap();

    // Within what is left: the right bytes.
    let kept = ByteRange { start: 1000, end: 699_999 };
    let part = read_all(store.open(&key, Some(kept)).await.unwrap()).await;
    assert_eq!(part, bytes[1000..700_000]);
    // Starting past the cut: refused before any byte.
    let past = ByteRange { start: 800_000, end: 900_000 };
    assert!(matches!(store.open(&key, Some(past)).await, Err(StorageError::Io(_))));
    // Crossing it: the first chunk comes, then an error, never a clean end.
    let across = ByteRange { start: 0, end: bytes.len() as u64 - 1 };
    let mut stream = store.open(&key, Some(across)).await.unwrap();
    let mut received = 0;
    let failed = loop {
        match futures_util::StreamExt::next(&mut stream).await {
            Some(Ok(chunk)) => received += chunk.len(),
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    assert!(failed, "the stream ended cleanly after {received} of {} bytes", bytes.len());
    assert!(received < 700_000);
}

#[tokio::test]
async fn the_s3_store_passes_the_storage_suite_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    the_suite(s3_store(&dir).await).await;
}

#[tokio::test]
async fn presigned_urls_work_until_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store(&dir).await;
    let bytes = image_bytes(7, 100_000);
    let staged = store.put_staging(chunks(&bytes, 8192), u64::MAX).await.unwrap();
    let key = ObjectKey::Firmware(staged.sha256);
    store.promote(&staged.key, &key).await.unwrap();

    let url = store.presign_get(&key, Duration::from_secs(60)).await.unwrap();
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);

    let tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=600");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);

    let short = store.presign_get(&key, Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = reqwest::get(&short).await.unwrap();
    assert_eq!(expired.status(), 403, "an expired presigned URL must be refused");

    let fs_dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        fs_store(&fs_dir).await.presign_get(&key, Duration::from_secs(1)).await,
        Err(StorageError::Unsupported(_))
    ));
}
