use serde_json::json;

use super::*;

fn rfc(expression: &str) -> Vec<Part> {
    translate(expression).unwrap()
}

fn select(expression: &str, doc: &Value) -> Vec<Value> {
    NewtonsoftPath::parse(expression)
        .unwrap()
        .select(doc, None)
        .into_iter()
        .cloned()
        .collect()
}

#[test]
fn at_without_dot_reads_as_member() {
    assert_eq!(
        rfc("$..[?(@heartRate)]"),
        [Part::Scan("@.heartRate".into())]
    );
    assert_eq!(
        rfc("$..[?(@Body.heartRate)]"),
        [Part::Scan("@.Body.heartRate".into())]
    );
    assert_eq!(rfc("$[?(@['x'])]"), [Part::Path("$[?(@['x'])]".into())]);
}

#[test]
fn hyphenated_names_become_brackets() {
    assert_eq!(
        rfc("$.SystemProperties.iothub-connection-device-id"),
        [Part::Path(
            "$.SystemProperties['iothub-connection-device-id']".into()
        )]
    );
    assert_eq!(
        rfc("$..[?(@.SystemProperties.iothub-connection-device-id == 'd1')]"),
        [Part::Scan(
            "@.SystemProperties['iothub-connection-device-id'] == 'd1'".into()
        )]
    );
    assert_eq!(rfc("$..a-b"), [Part::Path("$..['a-b']".into())]);
    let doc = json!({"Properties": {"iothub-creation-time-utc": "t"}});
    assert_eq!(
        select("$.Properties.iothub-creation-time-utc", &doc),
        [json!("t")]
    );
}

#[test]
fn path_without_dollar_and_brackets() {
    assert_eq!(
        rfc("Body.heartRate"),
        [Part::Path("$.Body.heartRate".into())]
    );
    assert_eq!(
        rfc("$.a[0]['b c'][*]"),
        [Part::Path("$.a[0]['b c'][*]".into())]
    );
    assert_eq!(rfc("$.['a']"), [Part::Path("$['a']".into())]);
}

#[test]
fn newtonsoft_operators() {
    assert_eq!(
        rfc("$.r[?(@.a === 1 && @.b !== 'x' || @c >= 2)]"),
        [Part::Path(
            "$.r[?(@.a == 1 && @.b != 'x' || @.c >= 2)]".into()
        )]
    );
    assert!(NewtonsoftPath::parse("$.r[?(@.a =~ /x/)]").is_err());
    assert!(NewtonsoftPath::parse("$.r[(@.length-1)]").is_err());
    assert!(NewtonsoftPath::parse("$.r[?(@.a == )]").is_err());
    assert!(NewtonsoftPath::parse("$.a b").is_err());
}

#[test]
fn scan_filter_tests_the_root_itself() {
    let envelope = json!({"Body": {"heartRate": 72}, "Properties": {}});
    let path = NewtonsoftPath::parse("$..[?(@Body.heartRate)]").unwrap();
    let found = path.select(&envelope, None);
    assert_eq!(found.len(), 1);
    assert!(std::ptr::eq(found[0], &envelope));
    // The cached wrapper gives the same answer.
    let wrapped = Value::Array(vec![envelope.clone()]);
    assert!(std::ptr::eq(
        path.select(&envelope, Some(&wrapped))[0],
        &envelope
    ));
}

#[test]
fn scan_filter_finds_descendants_in_document_order() {
    let doc = json!({
        "a": {"x": 1, "b": {"x": 2}},
        "c": {"x": 3},
        "list": [{"x": 4}, {"y": 5}, {"x": 6}]
    });
    let xs: Vec<Value> = select("$..[?(@.x)]", &doc)
        .into_iter()
        .map(|v| v["x"].clone())
        .collect();
    assert_eq!(xs, [json!(1), json!(2), json!(3), json!(4), json!(6)]);
    assert_eq!(select("$..[?(@.x > 3)].x", &doc), [json!(4), json!(6)]);
    assert_eq!(select("$..x", &doc).len(), 5);
}

#[test]
fn scan_after_a_prefix_and_numbers_compare() {
    let doc: Value =
        serde_json::from_str(r#"{"Body": {"v": 1.5, "inner": {"v": 100000000000000000001}}}"#)
            .unwrap();
    assert_eq!(select("$.Body..[?(@.v > 1)]", &doc).len(), 2);
    assert_eq!(
        select("$.Body..[?(@.v == 1.5)]", &doc),
        [doc["Body"].clone()]
    );
}
