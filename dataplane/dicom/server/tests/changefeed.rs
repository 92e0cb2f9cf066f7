//! The change feed's query parameters against the real PostgreSQL: spelt in any case, unknown
//! ones refused, and each API version's `limit` default and maximum (Azure's).

mod common;

use common::*;
use serde_json::Value;

const CT: &str = "CT_small.dcm";

async fn feed(s: &TestServer, path: &str) -> (u16, Value) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn parameters_bind_in_any_case_and_unknown_ones_are_refused() {
    let s = start().await;
    let ct = file(CT);
    for n in 0..3 {
        let (st, a) = stow(&s, "studies", &[("application/dicom", &variant(&ct, n))]).await;
        assert_eq!(st, 200, "{a}");
    }
    let (_, all) = feed(&s, "v2/changefeed?includeMetadata=false").await;
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 3);
    // Just after the first entry: Azure's page spells the window `endtime`.
    let first: chrono::DateTime<chrono::Utc> =
        all[0]["Timestamp"].as_str().unwrap().parse().unwrap();
    let end = (first + chrono::Duration::microseconds(1)).to_rfc3339();
    let start = all[1]["Timestamp"].as_str().unwrap();
    for (q, expected) in [
        (format!("endtime={end}&includemetadata=false"), vec![1]),
        (format!("EndTime={end}&IncludeMetadata=FALSE"), vec![1]),
        (format!("starttime={start}&LIMIT=1"), vec![2]),
        (format!("StartTime={start}&oFFset=1"), vec![3]),
    ] {
        let path = format!("v2/changefeed?{}", q.replace('+', "%2B"));
        let (st, v) = feed(&s, &path).await;
        assert_eq!(st, 200, "{path}: {v}");
        let seqs: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, expected, "{path}");
        if q.to_lowercase().contains("includemetadata=false") {
            assert!(v[0].get("Metadata").is_none(), "{path}: {v}");
        } else {
            assert!(v[0]["Metadata"].is_object(), "{path}: {v}");
        }
    }
    let (_, latest) = feed(&s, "changefeed/latest?includemetadata=False").await;
    assert_eq!(latest["Sequence"], 3);
    assert!(latest.get("Metadata").is_none(), "{latest}");

    for path in [
        "changefeed?bogus=1&limit=1",
        "v2/changefeed?endtimes=2026-01-01T00:00:00Z",
        "v1/changefeed/latest?limit=1",
        "changefeed?includeMetadata=maybe",
    ] {
        let (st, body) = feed(&s, path).await;
        assert_eq!(st, 400, "{path}: {body}");
        assert!(
            body.as_str().is_some_and(|t| !t.is_empty()),
            "{path}: a reason"
        );
    }
}

#[tokio::test]
async fn each_version_has_azures_limit_default_and_maximum() {
    let s = start().await;
    let ct = file(CT);
    let parts: Vec<Vec<u8>> = (0..12).map(|n| variant(&ct, n)).collect();
    let parts: Vec<(&str, &[u8])> = parts
        .iter()
        .map(|p| ("application/dicom", p.as_slice()))
        .collect();
    let (st, a) = stow(&s, "studies", &parts).await;
    assert_eq!(st, 200, "{a}");
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    for (path, status, n) in [
        ("v2/changefeed?includeMetadata=false", 200, 12),
        ("v1/changefeed?includeMetadata=false", 200, 10),
        ("changefeed?includeMetadata=false", 200, 10),
        ("v2/changefeed?limit=200", 200, 12),
        ("v2/changefeed?limit=201", 400, 0),
        ("v1/changefeed?limit=100", 200, 12),
        ("v1/changefeed?limit=101", 400, 0),
        ("changefeed?limit=200", 200, 12),
    ] {
        let (st, v) = feed(&s, path).await;
        assert_eq!((st, count(&v)), (status, n), "{path}: {v}");
    }
}
