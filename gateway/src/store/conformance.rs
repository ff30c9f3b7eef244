//! The contract every [`ChunkStore`] keeps, as public async checks that
//! panic on a breach (run them in a test): the unit tests run them against
//! the memory store and a fault-free [`Faulty`](super::faulty::Faulty)
//! around it, `tests/tests/store_conformance.rs` against a real
//! `cairn chunkstore` daemon, which is what the others copy. Run on a fresh,
//! empty store with room for a few MiB; each check keeps to keys of its own.

use super::{ChunkStore, Status, StoreError};

/// Every check, in turn.
pub async fn check_all(store: &dyn ChunkStore) {
    put_then_get(store).await;
    range_past_the_end(store).await;
    missing_keys(store).await;
    delete(store).await;
    overwrite(store).await;
    list_pages(store).await;
    capacity_follows_puts(store).await;
    bad_keys(store).await;
}

/// `len` bytes of a pattern that differs at every offset.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn status_of<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) -> Status {
    match result {
        Ok(v) => panic!("{what}: succeeded ({v:?}), an error was expected"),
        Err(e) => e.status(),
    }
}

/// A put reports the length and crc32c it stored, stat agrees, and the whole
/// object, a range, and an empty range at any offset up to the end read back.
pub async fn put_then_get(store: &dyn ChunkStore) {
    let key = "c00000000000000a1";
    let data = pattern(100_000, 1);
    let stat = store.put(key, &data).await.expect("put");
    assert_eq!(stat.len, data.len() as u64, "put's length");
    assert_eq!(stat.crc, crc32c::crc32c(&data), "put's crc32c");
    assert_eq!(store.stat(key).await.expect("stat"), stat, "stat after put");
    let len = data.len() as u64;
    let whole = store.get(key, 0, len, None).await.expect("get all");
    assert!(whole == data, "the whole object reads back");
    let range = store.get(key, 1000, 5000, None).await.expect("get a range");
    assert!(range == data[1000..6000], "a range reads back");
    let tail = store
        .get(key, len - 7, 7, None)
        .await
        .expect("get the tail");
    assert!(tail == data[data.len() - 7..], "the last bytes read back");
    let stalled = store
        .get(key, 10, 10, Some(std::time::Duration::from_secs(5)))
        .await
        .expect("get with a stall limit");
    assert!(
        stalled == data[10..20],
        "a get with a stall limit reads back"
    );
    for offset in [0, 17, len] {
        let none = store.get(key, offset, 0, None).await.expect("get 0 bytes");
        assert!(none.is_empty(), "an empty range at {offset} reads nothing");
    }
}

/// A range that ends past the object is refused as such, not cut short.
pub async fn range_past_the_end(store: &dyn ChunkStore) {
    let key = "c00000000000000a2";
    store.put(key, &pattern(1000, 2)).await.expect("put");
    for (offset, len) in [(990, 11), (0, 1001), (1001, 0), (u64::MAX, 2)] {
        let r = store.get(key, offset, len, None).await;
        assert_eq!(
            status_of("get past the end", r),
            Status::InvalidRange,
            "get {offset}+{len} of a 1000-byte object"
        );
    }
}

/// Reading or stat'ing a key that was never put is "not found".
pub async fn missing_keys(store: &dyn ChunkStore) {
    let key = "c00000000000000a3";
    let got = store.get(key, 0, 1, None).await;
    assert_eq!(status_of("get of a missing key", got), Status::NotFound);
    let stat = store.stat(key).await;
    assert_eq!(status_of("stat of a missing key", stat), Status::NotFound);
}

/// A delete says whether there was an object; afterwards there is none, and
/// deleting it again is no error.
pub async fn delete(store: &dyn ChunkStore) {
    let key = "c00000000000000a4";
    store.put(key, &pattern(10, 4)).await.expect("put");
    assert!(store.delete(key).await.expect("delete"), "delete finds it");
    let stat = store.stat(key).await;
    assert_eq!(status_of("stat after delete", stat), Status::NotFound);
    assert!(
        !store.delete(key).await.expect("delete again"),
        "a second delete finds nothing"
    );
    let listed = store
        .list(Some("c00000000000000a3"), 10)
        .await
        .expect("list");
    assert!(
        listed.iter().all(|e| e.key != key),
        "a deleted key is not listed"
    );
}

/// A put over an existing key replaces the object whole.
pub async fn overwrite(store: &dyn ChunkStore) {
    let key = "c00000000000000a5";
    store.put(key, &pattern(5000, 5)).await.expect("first put");
    let second = pattern(3000, 6);
    let stat = store.put(key, &second).await.expect("second put");
    assert_eq!(store.stat(key).await.expect("stat"), stat);
    assert_eq!(stat.len, 3000, "the second put's length");
    let got = store.get(key, 0, 3000, None).await.expect("get");
    assert!(got == second, "the second put's bytes read back");
    let past = store.get(key, 0, 5000, None).await;
    assert_eq!(
        status_of("get of the first put's length", past),
        Status::InvalidRange
    );
}

/// Listing is in key order, strictly after `after`, at most `limit` a page,
/// with each object's length; paging through reaches every key once.
pub async fn list_pages(store: &dyn ChunkStore) {
    let mut keys: Vec<String> = (0..25u64).map(|i| format!("l{:04}", i * 7 % 25)).collect();
    for (i, key) in keys.iter().enumerate() {
        store.put(key, &pattern(i + 1, 7)).await.expect("put");
    }
    let len_of = |key: &str| keys.iter().position(|k| k == key).map(|i| i as u64 + 1);
    let ours = |entries: Vec<super::ListEntry>| -> Vec<super::ListEntry> {
        entries
            .into_iter()
            .filter(|e| e.key.starts_with('l'))
            .collect()
    };
    let all = ours(store.list(Some("l"), 1000).await.expect("list all"));
    let mut sorted = keys.clone();
    sorted.sort();
    let listed: Vec<String> = all.iter().map(|e| e.key.clone()).collect();
    assert_eq!(listed, sorted, "listing is in key order");
    for e in &all {
        assert_eq!(Some(e.len), len_of(&e.key), "listed length of {}", e.key);
    }
    let after = store.list(Some("l0010"), 3).await.expect("list after");
    let after: Vec<&str> = after.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(after, ["l0011", "l0012", "l0013"], "after and limit");
    let mut paged = Vec::new();
    let mut cursor = String::from("l");
    loop {
        let page = store.list(Some(&cursor), 4).await.expect("list a page");
        assert!(page.len() <= 4, "a page holds at most the limit");
        let full = page.len() == 4;
        let page = ours(page);
        let Some(last) = page.last() else { break };
        cursor = last.key.clone();
        paged.extend(page.into_iter().map(|e| e.key));
        if !full {
            break;
        }
    }
    assert_eq!(paged, sorted, "paging reaches every key once, in order");
    let one = store.list(Some("l"), 0).await.expect("list with limit 0");
    assert_eq!(one.len(), 1, "a limit of 0 lists one key");
    keys.sort();
    for key in &keys {
        store.delete(key).await.expect("delete");
    }
}

/// The capacity report counts what the store holds: a put adds its bytes and
/// one object, a delete takes them off; free never exceeds total.
pub async fn capacity_follows_puts(store: &dyn ChunkStore) {
    let key = "c00000000000000a6";
    let before = store.capacity().await.expect("capacity");
    assert!(before.free <= before.total, "free within total: {before:?}");
    store.put(key, &pattern(4096, 8)).await.expect("put");
    let after = store.capacity().await.expect("capacity after put");
    assert_eq!(after.stored, before.stored + 4096, "stored bytes after put");
    assert_eq!(after.shards, before.shards + 1, "objects after put");
    assert_eq!(
        (
            after.name.as_str(),
            after.zone.as_str(),
            after.host.as_str()
        ),
        (
            before.name.as_str(),
            before.zone.as_str(),
            before.host.as_str()
        ),
        "identity is stable"
    );
    store.delete(key).await.expect("delete");
    let gone = store.capacity().await.expect("capacity after delete");
    assert_eq!(gone.stored, before.stored, "stored bytes after delete");
    assert_eq!(gone.shards, before.shards, "objects after delete");
}

/// Keys outside 1..=128 bytes of `[A-Za-z0-9._-]` (or starting with `.`)
/// are refused as a bad request, for every operation.
pub async fn bad_keys(store: &dyn ChunkStore) {
    for key in ["", ".hidden", "a/b", "sp ace", &"k".repeat(129)] {
        let put = store.put(key, b"x").await;
        assert_eq!(status_of("put", put), Status::BadRequest, "put {key:?}");
        let get = store.get(key, 0, 1, None).await;
        assert_eq!(status_of("get", get), Status::BadRequest, "get {key:?}");
        let stat = store.stat(key).await;
        assert_eq!(status_of("stat", stat), Status::BadRequest, "stat {key:?}");
        let delete = store.delete(key).await;
        assert_eq!(status_of("delete", delete), Status::BadRequest);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::faulty::Faulty;
    use crate::store::memory::{Identity, MemoryStore};

    #[tokio::test]
    async fn the_memory_store_conforms() {
        check_all(&MemoryStore::new(Identity::named("m", 64 << 20))).await;
    }

    #[tokio::test]
    async fn a_faulty_store_without_faults_conforms() {
        let inner = Arc::new(MemoryStore::new(Identity::named("m", 64 << 20)));
        check_all(&Faulty::new(inner)).await;
    }
}
