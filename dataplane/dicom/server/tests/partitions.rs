//! Data partitions' own routes against the real PostgreSQL, as Azure answers them: the list,
//! and partition routes while partitions are off.

mod common;

use common::*;
use serde_json::Value;

const CT: &str = "CT_small.dcm";

#[tokio::test]
async fn partitions_are_listed_in_azures_shape() {
    let mut cfg = common::config();
    cfg.enable_data_partitions = true;
    let s = start_with(cfg).await;
    let r = s.http.get(s.url("partitions")).send().await.unwrap();
    assert_eq!(r.status(), 204, "none before the first store");

    let ct = file(CT);
    for path in ["partitions/p1/studies", "studies", "partitions/p2/studies"] {
        let (st, a) = stow(&s, path, &[("application/dicom", &ct)]).await;
        assert_eq!(st, 200, "{path}: {a}");
    }
    for path in ["partitions", "v1/partitions", "v2/partitions"] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let list: Value = r.json().await.unwrap();
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["PartitionName"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["p1", "Microsoft.Default", "p2"], "{path}: {list}");
        let keys: Vec<i64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["PartitionKey"].as_i64().unwrap())
            .collect();
        assert_eq!(keys[1], 1, "the default partition's key, as on Azure");
        assert!(keys[0] != keys[2] && !keys.contains(&0), "{keys:?}");
        for p in list.as_array().unwrap() {
            let created = p["CreatedDate"].as_str().unwrap();
            assert!(
                chrono::DateTime::parse_from_rfc3339(created).is_ok(),
                "{created}"
            );
        }
    }
}

#[tokio::test]
async fn partition_routes_say_partitions_are_off() {
    let s = start().await;
    for (method, path) in [
        (reqwest::Method::GET, "partitions"),
        (reqwest::Method::GET, "v2/partitions"),
        (reqwest::Method::GET, "partitions/p1/studies"),
        (reqwest::Method::POST, "partitions/p1/studies"),
        (reqwest::Method::DELETE, "v1/partitions/p1/studies/1.2.3"),
    ] {
        let r = s.http.request(method, s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(
            r.text().await.unwrap(),
            "Data partitions capability is disabled",
            "{path}"
        );
    }
}
