//! `Index::store` against a real PostgreSQL: what is committed when, and in which order.

use hds_dicom_model::{IndexAttributes, Instance};

use crate::{Index, NewInstance, StoreOutcome};

pub(crate) fn instance(series: &str, sop: &str) -> Instance {
    Instance {
        study_uid: "1.2.826.0.1.3680043.8.498.1".into(),
        series_uid: series.into(),
        sop_uid: sop.into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        transfer_syntax: "1.2.840.10008.1.2.1".into(),
        index: IndexAttributes {
            patient_id: Some("P1".into()),
            modality: Some("CT".into()),
            ..IndexAttributes::default()
        },
        metadata: format!(r#"{{"00080018":{{"vr":"UI","Value":["{sop}"]}}}}"#),
        study_json: r#"{"00100020":{"vr":"LO","Value":["P1"]}}"#.into(),
        series_json: r#"{"00080060":{"vr":"CS","Value":["CT"]}}"#.into(),
        instance_json: format!(r#"{{"00080018":{{"vr":"UI","Value":["{sop}"]}}}}"#),
        warnings: Vec::new(),
    }
}

fn item(i: &Instance) -> NewInstance<'_> {
    NewInstance {
        instance: i,
        blob: format!("p/{}_{}.dcm", i.sop_uid, uuid::Uuid::new_v4().simple()),
        size: 10,
    }
}

async fn open() -> (Index, tokio_postgres::Client) {
    open_with_pool(2).await
}

pub(crate) async fn open_with_pool(size: usize) -> (Index, tokio_postgres::Client) {
    let url = hds_common::db::fresh_test_database().await;
    let index = Index::open(&url, size).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    (index, client)
}

pub(crate) async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn assert_nothing_stored(db: &tokio_postgres::Client) {
    for table in [
        "dicom_studies",
        "dicom_series",
        "dicom_instances",
        "dicom_changes",
    ] {
        assert_eq!(count(db, table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn nothing_is_committed_when_the_files_are_not_durable() {
    let (index, db) = open().await;
    let (a, b) = (
        instance("1.2.3.1", "1.2.3.1.1"),
        instance("1.2.3.2", "1.2.3.2.1"),
    );
    let items = [item(&a), item(&b)];
    let failed = index
        .store("p", &items, false, Err("disk gone".to_owned()))
        .await;
    assert!(
        matches!(&failed, Err(crate::IndexError::FilesNotDurable(why)) if why == "disk gone"),
        "{failed:?}"
    );
    assert_nothing_stored(&db).await;
    // The same request again, durable this time, stores both (no duplicate left behind).
    let report = index.store("p", &items, false, Ok(())).await.unwrap();
    assert_eq!(
        report.outcomes,
        [StoreOutcome::Stored, StoreOutcome::Stored]
    );
    assert_eq!(count(&db, "dicom_series").await, 2);
    assert_eq!(count(&db, "dicom_changes").await, 2);
}

#[tokio::test]
async fn instances_get_watermarks_in_the_order_sent_and_repeats_are_duplicates() {
    let (index, db) = open().await;
    let (x, y) = (
        instance("1.2.3.1", "1.2.3.1.9"),
        instance("1.2.3.1", "1.2.3.1.1"),
    );
    let items = [item(&x), item(&y), item(&x)];
    let report = index.store("p", &items, false, Ok(())).await.unwrap();
    assert_eq!(
        report.outcomes,
        [
            StoreOutcome::Stored,
            StoreOutcome::Stored,
            StoreOutcome::Duplicate
        ]
    );
    // Rows go in (study, series, SOP) order, so 1.2.3.1.1 gets the first watermark; each
    // stored row names its own item's file.
    let rows = db
        .query(
            "SELECT sop_uid, blob FROM dicom_instances ORDER BY watermark",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        [
            (y.sop_uid.clone(), items[1].blob.clone()),
            (x.sop_uid.clone(), items[0].blob.clone()),
        ]
    );
}

/// Transactions begin and end in the same round trips as their statements; a store that fails
/// in either must not hand its connection back inside a transaction.
#[tokio::test]
async fn failed_stores_leave_their_connection_outside_any_transaction() {
    let (index, db) = open_with_pool(1).await;
    // PostgreSQL refuses a NUL in text: in the lookup (the first round trip, with BEGIN), then
    // in the instance row (the second, with COMMIT).
    let bad_lookup = instance("1.2.3.1", "1.2.3.1.\0");
    let mut bad_row = instance("1.2.3.1", "1.2.3.1.2");
    bad_row.metadata = "{\"x\": \"\0\"}".into();
    for bad in [&bad_lookup, &bad_row] {
        let failed = index.store("p", &[item(bad)], false, Ok(())).await;
        assert!(
            matches!(failed, Err(crate::IndexError::Postgres(_))),
            "{failed:?}"
        );
    }
    assert_nothing_stored(&db).await;
    // The pool's one connection serves the next store, which commits on its own.
    let good = instance("1.2.3.1", "1.2.3.1.3");
    let report = index
        .store("p", &[item(&good)], false, Ok(()))
        .await
        .unwrap();
    assert_eq!(report.outcomes, [StoreOutcome::Stored]);
    assert_eq!(count(&db, "dicom_changes").await, 1);
    let in_transaction: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_transaction, 0);
}

#[tokio::test]
async fn a_store_cancelled_inside_its_transaction_closes_the_connection() {
    let (index, db) = open_with_pool(1).await;
    let first = instance("1.2.3.1", "1.2.3.1.1");
    index
        .store("p", &[item(&first)], false, Ok(()))
        .await
        .unwrap();
    assert_eq!(index.pool().status().size, 1);
    // The change-feed numbering's lock, held here, stops the next store just after its BEGIN.
    db.execute(
        "SELECT pg_advisory_lock($1)",
        &[&crate::changefeed::CHANGE_FEED_LOCK],
    )
    .await
    .unwrap();
    let waiting = instance("1.2.3.1", "1.2.3.1.2");
    let cancelled = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        index.store("p", &[item(&waiting)], false, Ok(())),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the store should have waited for the lock"
    );
    // Its connection left the pool rather than going back to it mid-transaction.
    assert_eq!(index.pool().status().size, 0);
    db.execute(
        "SELECT pg_advisory_unlock($1)",
        &[&crate::changefeed::CHANGE_FEED_LOCK],
    )
    .await
    .unwrap();
    let report = index
        .store("p", &[item(&waiting)], false, Ok(()))
        .await
        .unwrap();
    assert_eq!(report.outcomes, [StoreOutcome::Stored]);
    assert_eq!(count(&db, "dicom_instances").await, 2);
}

/// A store runs its writes on generic plans, made once per connection, possibly on an empty
/// database; that is safe only because no plan of theirs reads a table.
#[tokio::test]
async fn write_plans_scan_no_table() {
    let (_index, db) = open().await;
    for (name, sql, params, target) in [
        (
            "studies",
            super::UPSERT_STUDIES,
            11,
            "Insert on dicom_studies",
        ),
        ("series", super::UPSERT_SERIES, 7, "Insert on dicom_series"),
        (
            "instances",
            super::INSERT_INSTANCES,
            11,
            "Insert on dicom_instances",
        ),
    ] {
        db.batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE {name} AS {sql}"
        ))
        .await
        .unwrap();
        let nulls = vec!["NULL"; params].join(", ");
        let plan: Vec<String> = db
            .query(&format!("EXPLAIN EXECUTE {name}({nulls})"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(plan.iter().any(|l| l.contains(target)), "{plan:#?}");
        assert!(
            !plan.iter().any(|l| l.contains("Seq Scan")
                || l.contains("Index Scan")
                || l.contains("Index Only Scan")
                || l.contains("Bitmap")),
            "{name}: {plan:#?}"
        );
    }
}
