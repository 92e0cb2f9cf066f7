//! Grouped POSTs against a real PostgreSQL. The change-feed lock, held by a test, keeps the
//! first store inside its transaction while the others queue, so the groups are known.

use std::sync::Arc;
use std::time::Duration;

use hds_dicom_model::Instance;

use super::DurableInstance;
use crate::write::tests::{count, instance, open_with_pool};
use crate::{Index, IndexError, StoreOutcome, StoreReport};

fn durable(i: Instance) -> DurableInstance {
    DurableInstance {
        blob: format!("p/{}_{}.dcm", i.sop_uid, uuid::Uuid::new_v4().simple()),
        instance: Arc::new(i),
        size: 10,
    }
}

type Pending = tokio::task::JoinHandle<crate::Result<StoreReport>>;

fn post(index: &Index, partition: &str, items: Vec<DurableInstance>) -> Pending {
    let (index, partition) = (index.clone(), partition.to_owned());
    tokio::spawn(async move { index.store_posted(&partition, items, Ok(())).await })
}

fn queued(index: &Index) -> usize {
    index.groups.state.lock().unwrap().waiting.len()
}

/// Holds the change-feed lock, so that a first store (of an instance of its own) waits inside
/// its transaction; `posts` are then sent one after the other, and the lock is released once
/// they all wait. Returns their stores, the first having stored its instance.
async fn while_the_first_waits(
    index: &Index,
    db: &tokio_postgres::Client,
    posts: Vec<(&str, Vec<DurableInstance>)>,
) -> Vec<Pending> {
    let lock = crate::changefeed::CHANGE_FEED_LOCK;
    db.execute("SELECT pg_advisory_lock($1)", &[&lock])
        .await
        .unwrap();
    let first = post(index, "p", vec![durable(instance("1.2.3.1", "1.2.3.1.1"))]);
    // The first is running (nothing waits) before the others come.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(queued(index), 0);
    let mut rest = Vec::new();
    for (n, (partition, items)) in posts.into_iter().enumerate() {
        rest.push(post(index, partition, items));
        let waits = async {
            while queued(index) < n + 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), waits)
            .await
            .expect("a POST sent while a store runs should wait for it");
    }
    db.execute("SELECT pg_advisory_unlock($1)", &[&lock])
        .await
        .unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.outcomes, [StoreOutcome::Stored]);
    rest
}

async fn transactions(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(DISTINCT xmin::text) FROM dicom_instances",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn posts_that_wait_together_share_one_transaction_and_keep_their_own_outcomes() {
    let (index, db) = open_with_pool(4).await;
    let dup = instance("1.2.3.2", "1.2.3.2.1");
    let posts = vec![
        ("p", vec![durable(dup.clone())]),
        (
            "p",
            vec![
                durable(instance("1.2.3.2", "1.2.3.2.2")),
                durable(instance("1.2.3.3", "1.2.3.3.1")),
            ],
        ),
        // The same instance again, after the first of it in the group: a duplicate (45070),
        // as if the requests had come one after the other.
        ("p", vec![durable(dup)]),
        // Another partition waits for a group of its own.
        ("q", vec![durable(instance("1.2.3.2", "1.2.3.2.1"))]),
        ("p", vec![durable(instance("1.2.3.4", "1.2.3.4.1"))]),
    ];
    let rest = while_the_first_waits(&index, &db, posts).await;
    let outcomes = |r: crate::Result<StoreReport>| r.unwrap().outcomes;
    let mut got = Vec::new();
    for p in rest {
        got.push(outcomes(p.await.unwrap()));
    }
    use StoreOutcome::{Duplicate, Stored};
    assert_eq!(
        got,
        [
            vec![Stored],
            vec![Stored, Stored],
            vec![Duplicate],
            vec![Stored],
            vec![Stored]
        ]
    );
    assert_eq!(count(&db, "dicom_instances").await, 6);
    assert_eq!(count(&db, "dicom_changes").await, 6);
    // The first alone, the four of partition p together, then q's.
    assert_eq!(transactions(&db).await, 3);
    let p_groups: i64 = db
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM dicom_instances
              WHERE partition = 'p' AND sop_uid <> '1.2.3.1.1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(p_groups, 1);
}

#[tokio::test]
async fn a_bad_request_in_a_group_fails_alone() {
    let (index, db) = open_with_pool(4).await;
    // PostgreSQL refuses a NUL in text, so the group's transaction fails as a whole.
    let mut bad = instance("1.2.3.2", "1.2.3.2.9");
    bad.metadata = "{\"x\": \"\0\"}".into();
    let posts = vec![
        ("p", vec![durable(instance("1.2.3.2", "1.2.3.2.1"))]),
        ("p", vec![durable(bad)]),
        ("p", vec![durable(instance("1.2.3.3", "1.2.3.3.1"))]),
    ];
    let rest = while_the_first_waits(&index, &db, posts).await;
    let mut results = Vec::new();
    for p in rest {
        results.push(p.await.unwrap());
    }
    assert_eq!(
        results[0].as_ref().unwrap().outcomes,
        [StoreOutcome::Stored]
    );
    assert!(
        matches!(&results[1], Err(IndexError::Postgres(_))),
        "{:?}",
        results[1]
    );
    assert_eq!(
        results[2].as_ref().unwrap().outcomes,
        [StoreOutcome::Stored]
    );
    let stored: Vec<String> = db
        .query("SELECT sop_uid FROM dicom_instances ORDER BY sop_uid", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, ["1.2.3.1.1", "1.2.3.2.1", "1.2.3.3.1"]);
    assert_eq!(count(&db, "dicom_changes").await, 3);
}

#[tokio::test]
async fn files_that_are_not_durable_are_never_queued() {
    let (index, db) = open_with_pool(1).await;
    let failed = index
        .store_posted(
            "p",
            vec![durable(instance("1.2.3.1", "1.2.3.1.1"))],
            Err("disk gone".to_owned()),
        )
        .await;
    assert!(
        matches!(&failed, Err(IndexError::FilesNotDurable(why)) if why == "disk gone"),
        "{failed:?}"
    );
    assert_eq!(queued(&index), 0);
    assert_eq!(count(&db, "dicom_instances").await, 0);
}

#[tokio::test]
async fn a_post_of_many_instances_is_not_queued_behind_a_group() {
    let (index, db) = open_with_pool(4).await;
    let lock = crate::changefeed::CHANGE_FEED_LOCK;
    db.execute("SELECT pg_advisory_lock($1)", &[&lock])
        .await
        .unwrap();
    let first = post(&index, "p", vec![durable(instance("1.2.3.1", "1.2.3.1.1"))]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let many: Vec<DurableInstance> = (0..super::OWN_TRANSACTION_FROM)
        .map(|n| durable(instance("1.2.3.2", &format!("1.2.3.2.{n}"))))
        .collect();
    let large = post(&index, "p", many);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // It waits for the lock inside a transaction of its own, not in the queue.
    assert_eq!(queued(&index), 0);
    db.execute("SELECT pg_advisory_unlock($1)", &[&lock])
        .await
        .unwrap();
    assert_eq!(
        first.await.unwrap().unwrap().outcomes,
        [StoreOutcome::Stored]
    );
    let outcomes = large.await.unwrap().unwrap().outcomes;
    assert_eq!(outcomes.len(), super::OWN_TRANSACTION_FROM);
    assert!(outcomes.iter().all(|o| *o == StoreOutcome::Stored));
    assert_eq!(transactions(&db).await, 2);
}
