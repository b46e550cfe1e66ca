//! The behaviour every key-value backend shares, as one suite that the
//! tests run against each backend (`tests/all/keyvalue.rs`): what a guest
//! sees must not depend on where its bucket lives.
//!
//! [`run`] takes an empty store and panics, naming the check, at the first
//! difference.

use super::{KeyValueStore, LIST_PAGE};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Runs every check on `store`, which must be empty.
pub async fn run(store: Arc<dyn KeyValueStore>) {
    values_round_trip(store.as_ref()).await;
    buckets_are_apart(store.as_ref()).await;
    counters(store.as_ref()).await;
    concurrent_increments_add_up(store.clone()).await;
    pages_list_every_key_once(store.as_ref()).await;
    batches(store.as_ref()).await;
    batches_are_seen_whole(store).await;
}

async fn values_round_trip(kv: &dyn KeyValueStore) {
    let b = "values";
    assert_eq!(
        kv.get(b, "k").await.unwrap(),
        None,
        "a missing key reads as none"
    );
    assert!(!kv.exists(b, "k").await.unwrap());
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    kv.set(b, "k", bytes.clone()).await.unwrap();
    assert_eq!(
        kv.get(b, "k").await.unwrap(),
        Some(bytes),
        "any bytes round-trip"
    );
    assert!(kv.exists(b, "k").await.unwrap());
    kv.set(b, "k", Vec::new()).await.unwrap();
    assert_eq!(
        kv.get(b, "k").await.unwrap(),
        Some(Vec::new()),
        "an empty value is a value, not an absent key"
    );
    kv.set(b, "ключ 🗝", b"v".to_vec()).await.unwrap();
    assert_eq!(kv.get(b, "ключ 🗝").await.unwrap(), Some(b"v".to_vec()));
    kv.delete(b, "k").await.unwrap();
    assert_eq!(kv.get(b, "k").await.unwrap(), None);
    kv.delete(b, "k")
        .await
        .expect("deleting a missing key is not an error");
}

async fn buckets_are_apart(kv: &dyn KeyValueStore) {
    kv.set("left", "k", b"l".to_vec()).await.unwrap();
    kv.set("right", "k", b"r".to_vec()).await.unwrap();
    assert_eq!(kv.get("left", "k").await.unwrap(), Some(b"l".to_vec()));
    assert_eq!(kv.get("right", "k").await.unwrap(), Some(b"r".to_vec()));
    kv.delete("left", "k").await.unwrap();
    assert_eq!(kv.get("right", "k").await.unwrap(), Some(b"r".to_vec()));
}

async fn counters(kv: &dyn KeyValueStore) {
    let b = "counters";
    assert_eq!(
        kv.increment(b, "n", 2).await.unwrap(),
        2,
        "absent counts as 0"
    );
    assert_eq!(kv.increment(b, "n", 40).await.unwrap(), 42);
    assert_eq!(kv.increment(b, "n", 0).await.unwrap(), 42);
    assert_eq!(
        kv.get(b, "n").await.unwrap(),
        Some(b"42".to_vec()),
        "counters are decimal text"
    );
    kv.set(b, "text", b"forty-two".to_vec()).await.unwrap();
    let err = kv.increment(b, "text", 1).await.unwrap_err();
    assert!(
        err.to_string().contains("not a decimal counter"),
        "incrementing text: {err}"
    );
    assert_eq!(
        kv.get(b, "text").await.unwrap(),
        Some(b"forty-two".to_vec()),
        "a failed increment changes nothing"
    );
    kv.set(b, "big", (i64::MAX as u64).to_string().into_bytes())
        .await
        .unwrap();
    assert!(
        kv.increment(b, "big", u64::MAX / 2 + 2).await.is_err(),
        "a counter refuses to wrap"
    );
}

async fn concurrent_increments_add_up(kv: Arc<dyn KeyValueStore>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let kv = kv.clone();
        tasks.spawn(async move {
            for _ in 0..25 {
                kv.increment("race", "n", 1).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(
        kv.get("race", "n").await.unwrap(),
        Some(b"200".to_vec()),
        "200 increments from 8 tasks at once"
    );
}

async fn pages_list_every_key_once(kv: &dyn KeyValueStore) {
    assert!(kv.list_keys("nothing", None).await.unwrap().keys.is_empty());
    let all: BTreeSet<String> = (0..LIST_PAGE * 2 + 7)
        .map(|i| format!("key{i:05}"))
        .collect();
    let pairs: Vec<(String, Vec<u8>)> = all.iter().map(|k| (k.clone(), vec![1])).collect();
    kv.set_many("pages", pairs).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = kv.list_keys("pages", cursor).await.unwrap();
        assert!(page.keys.len() <= LIST_PAGE * 2, "a page is bounded");
        seen.extend(page.keys);
        pages += 1;
        assert!(pages < 100, "paging never ends");
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, all, "every key, across pages");
    assert!(pages > 1, "{} keys come in more than one page", all.len());
}

async fn batches(kv: &dyn KeyValueStore) {
    let b = "batch";
    let pairs = vec![
        ("a".to_string(), b"1".to_vec()),
        ("b".to_string(), b"2".to_vec()),
    ];
    kv.set_many(b, pairs).await.unwrap();
    let keys = ["a", "missing", "b"].map(String::from);
    assert_eq!(
        kv.get_many(b, &keys).await.unwrap(),
        vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())],
        "get-many answers in order, none for a missing key"
    );
    assert!(kv.get_many(b, &[]).await.unwrap().is_empty());
    kv.set_many(b, Vec::new()).await.unwrap();
    kv.delete_many(b, &keys).await.unwrap();
    assert_eq!(kv.get_many(b, &keys).await.unwrap(), vec![None, None, None]);
}

/// While one task writes both keys in each batch, a reader of both never
/// sees them differ.
async fn batches_are_seen_whole(kv: Arc<dyn KeyValueStore>) {
    let keys = ["x", "y"].map(String::from);
    let writer = {
        let kv = kv.clone();
        tokio::spawn(async move {
            for i in 0..200u32 {
                let v = i.to_string().into_bytes();
                let pairs = vec![("x".to_string(), v.clone()), ("y".to_string(), v)];
                kv.set_many("whole", pairs).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let values = kv.get_many("whole", &keys).await.unwrap();
        assert_eq!(values[0], values[1], "a batch was seen half written");
        reads += 1;
    }
    writer.await.unwrap();
}
