//! FHIR resources from what the index holds of a study: the ImagingStudy (R4), its Patient and
//! the Endpoint of the DICOMweb service. Pure functions, so the mapping is tested alone.

use hds_dicom_index::study::StudySummary;
use serde_json::{Map, Value, json};

/// DICOM's own UID identifier system (FHIR R4 ImagingStudy.identifier, as in the examples).
pub const DICOM_UID_SYSTEM: &str = "urn:dicom:uid";
/// The system of the Endpoint's identifier: the DICOM service it stands for.
pub const ENDPOINT_SYSTEM: &str = "urn:hds:dicom-service";

fn first<'a>(obj: &'a Value, tag: &str) -> Option<&'a Value> {
    obj.get(tag)?.get("Value")?.get(0)
}

fn text(obj: &Value, tag: &str) -> Option<String> {
    match first(obj, tag)? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(pn) => pn
            .get("Alphabetic")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

fn integer(obj: &Value, tag: &str) -> Option<i64> {
    match first(obj, tag)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `YYYYMMDD` → `YYYY-MM-DD`.
fn date(d: &str) -> Option<String> {
    (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]))
}

/// StudyDate and StudyTime → a FHIR dateTime (seconds at most; DICOM times have no zone, and
/// FHIR needs one once there is a time, so the TimezoneOffsetFromUTC or `Z` is added).
fn started(study: &Value) -> Option<String> {
    let day = date(&text(study, "00080020")?)?;
    let Some(t) = text(study, "00080030") else {
        return Some(day);
    };
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.len() < 4 {
        return Some(day);
    }
    let (h, m) = (&digits[..2], &digits[2..4]);
    let s = digits.get(4..6).unwrap_or("00");
    let zone = text(study, "00080201")
        .filter(|z| z.len() == 5 && (z.starts_with('+') || z.starts_with('-')))
        .map_or_else(|| "Z".to_owned(), |z| format!("{}:{}", &z[..3], &z[3..]));
    Some(format!("{day}T{h}:{m}:{s}{zone}"))
}

fn modality(code: &str) -> Value {
    json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": code})
}

pub fn study_identifier(study_uid: &str) -> String {
    format!("{DICOM_UID_SYSTEM}|urn:oid:{study_uid}")
}

/// The Patient's identifier token (`system|value`, or the value alone).
pub fn patient_identifier(system: Option<&str>, patient_id: &str) -> String {
    match system {
        Some(s) => format!("{s}|{patient_id}"),
        None => patient_id.to_owned(),
    }
}

/// The study's PatientID, which the sync needs to name a subject.
pub fn patient_id(summary: &StudySummary) -> Option<String> {
    let study: Value = serde_json::from_str(&summary.study_json).ok()?;
    text(&study, "00100020")
}

/// A Patient for a PatientID not found in the FHIR service.
pub fn patient(summary: &StudySummary, system: Option<&str>) -> Option<Value> {
    let study: Value = serde_json::from_str(&summary.study_json).ok()?;
    let id = text(&study, "00100020")?;
    let mut identifier = Map::new();
    if let Some(s) = system {
        identifier.insert("system".into(), json!(s));
    }
    identifier.insert("value".into(), json!(id));
    let mut p = Map::new();
    p.insert("resourceType".into(), json!("Patient"));
    p.insert("identifier".into(), json!([identifier]));
    if let Some(pn) = text(&study, "00100010") {
        // Family^Given^Middle^Prefix^Suffix
        let parts: Vec<&str> = pn.split('^').collect();
        let mut name = Map::new();
        if let Some(f) = parts.first().filter(|f| !f.is_empty()) {
            name.insert("family".into(), json!(f));
        }
        let given: Vec<&str> = parts
            .iter()
            .skip(1)
            .take(2)
            .copied()
            .filter(|g| !g.is_empty())
            .collect();
        if !given.is_empty() {
            name.insert("given".into(), json!(given));
        }
        if let Some(p) = parts.get(3).filter(|x| !x.is_empty()) {
            name.insert("prefix".into(), json!([p]));
        }
        if let Some(s) = parts.get(4).filter(|x| !x.is_empty()) {
            name.insert("suffix".into(), json!([s]));
        }
        if !name.is_empty() {
            p.insert("name".into(), json!([name]));
        }
    }
    if let Some(g) = text(&study, "00100040") {
        let gender = match g.as_str() {
            "M" => "male",
            "F" => "female",
            "O" => "other",
            _ => "unknown",
        };
        p.insert("gender".into(), json!(gender));
    }
    if let Some(b) = text(&study, "00100030").and_then(|b| date(&b)) {
        p.insert("birthDate".into(), json!(b));
    }
    Some(Value::Object(p))
}

/// Where a partition's studies are retrieved: the DICOMweb service itself for the default
/// partition (its routes without a partition serve that one), `{base}/partitions/{name}` for
/// the others, each an Endpoint of its own (identifier value `{service}` or
/// `{service}/partitions/{name}`), so a client follows an ImagingStudy's endpoint to the
/// partition that holds the study.
pub struct PartitionEndpoint {
    pub identifier: String,
    pub name: String,
    pub address: String,
}

impl PartitionEndpoint {
    pub fn new(service: &str, dicomweb_url: &str, partition: &str) -> Self {
        if partition == hds_dicom_index::DEFAULT_PARTITION {
            return Self {
                identifier: service.to_owned(),
                name: format!("DICOMweb service {service}"),
                address: dicomweb_url.to_owned(),
            };
        }
        Self {
            identifier: format!("{service}/partitions/{partition}"),
            name: format!("DICOMweb service {service}, partition {partition}"),
            address: format!("{dicomweb_url}/partitions/{partition}"),
        }
    }
}

pub fn endpoint(e: &PartitionEndpoint) -> Value {
    json!({
        "resourceType": "Endpoint",
        "identifier": [{"system": ENDPOINT_SYSTEM, "value": e.identifier}],
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs"
        },
        "name": e.name,
        "payloadType": [{"text": "DICOM WADO-RS"}],
        "payloadMimeType": ["application/dicom"],
        "address": e.address,
    })
}

/// The ImagingStudy of everything stored of the study.
pub fn imaging_study(summary: &StudySummary, patient_id: &str, endpoint_id: &str) -> Value {
    let study: Value = serde_json::from_str(&summary.study_json).unwrap_or(Value::Null);
    let mut identifiers = vec![json!({
        "system": DICOM_UID_SYSTEM,
        "value": format!("urn:oid:{}", summary.study_uid),
    })];
    if let Some(acc) = text(&study, "00080050") {
        identifiers.push(json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
            "value": acc,
        }));
    }
    let mut modalities: Vec<String> = Vec::new();
    let mut series = Vec::new();
    let mut instances_total = 0;
    for se in &summary.series {
        let sj: Value = serde_json::from_str(&se.series_json).unwrap_or(Value::Null);
        let mut s = Map::new();
        s.insert("uid".into(), json!(se.series_uid));
        if let Some(n) = integer(&sj, "00200011").filter(|n| *n >= 0) {
            s.insert("number".into(), json!(n));
        }
        let m = text(&sj, "00080060").unwrap_or_else(|| "OT".into());
        if !modalities.contains(&m) {
            modalities.push(m.clone());
        }
        s.insert("modality".into(), modality(&m));
        if let Some(d) = text(&sj, "0008103E") {
            s.insert("description".into(), json!(d));
        }
        s.insert("numberOfInstances".into(), json!(se.instances.len()));
        s.insert(
            "endpoint".into(),
            json!([{"reference": format!("Endpoint/{endpoint_id}")}]),
        );
        let instances: Vec<Value> = se
            .instances
            .iter()
            .map(|i| {
                let mut v = Map::new();
                v.insert("uid".into(), json!(i.sop_uid));
                v.insert(
                    "sopClass".into(),
                    json!({"system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{}", i.sop_class_uid)}),
                );
                if let Some(n) = i.instance_number.filter(|n| *n >= 0) {
                    v.insert("number".into(), json!(n));
                }
                Value::Object(v)
            })
            .collect();
        instances_total += instances.len();
        s.insert("instance".into(), json!(instances));
        series.push(Value::Object(s));
    }
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("ImagingStudy"));
    r.insert("identifier".into(), json!(identifiers));
    r.insert("status".into(), json!("available"));
    r.insert(
        "modality".into(),
        json!(modalities.iter().map(|m| modality(m)).collect::<Vec<_>>()),
    );
    r.insert(
        "subject".into(),
        json!({"reference": format!("Patient/{patient_id}")}),
    );
    if let Some(s) = started(&study) {
        r.insert("started".into(), json!(s));
    }
    r.insert(
        "endpoint".into(),
        json!([{"reference": format!("Endpoint/{endpoint_id}")}]),
    );
    r.insert("numberOfSeries".into(), json!(summary.series.len()));
    r.insert("numberOfInstances".into(), json!(instances_total));
    if let Some(d) = text(&study, "00081030") {
        r.insert("description".into(), json!(d));
    }
    r.insert("series".into(), json!(series));
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hds_dicom_index::study::{InstanceSummary, SeriesSummary};

    fn summary() -> StudySummary {
        StudySummary {
            study_uid: "1.2.3".into(),
            study_json: r#"{"00080020":{"vr":"DA","Value":["20040119"]},"00080030":{"vr":"TM","Value":["072730.5"]},"00080201":{"vr":"SH","Value":["-0500"]},"00080050":{"vr":"SH","Value":["A1"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^Jane^Q"}]},"00100020":{"vr":"LO","Value":["P1"]},"00100040":{"vr":"CS","Value":["F"]},"00100030":{"vr":"DA","Value":["19800102"]}}"#.into(),
            series: vec![SeriesSummary {
                series_uid: "1.2.3.4".into(),
                series_json: r#"{"00080060":{"vr":"CS","Value":["CT"]},"00200011":{"vr":"IS","Value":[2]}}"#.into(),
                instances: vec![InstanceSummary {
                    sop_uid: "1.2.3.4.5".into(),
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                    instance_number: Some(1),
                }],
            }],
        }
    }

    #[test]
    fn an_imaging_study_names_its_series_instances_and_patient() {
        let s = imaging_study(&summary(), "pat", "ep");
        assert_eq!(s["identifier"][0]["value"], "urn:oid:1.2.3");
        assert_eq!(s["identifier"][1]["value"], "A1");
        assert_eq!(s["subject"]["reference"], "Patient/pat");
        assert_eq!(s["started"], "2004-01-19T07:27:30-05:00");
        assert_eq!(s["modality"][0]["code"], "CT");
        assert_eq!(s["numberOfSeries"], 1);
        assert_eq!(s["numberOfInstances"], 1);
        assert_eq!(s["series"][0]["number"], 2);
        assert_eq!(
            s["series"][0]["instance"][0]["sopClass"]["code"],
            "urn:oid:1.2.840.10008.5.1.4.1.1.2"
        );
        assert_eq!(s["endpoint"][0]["reference"], "Endpoint/ep");
    }

    #[test]
    fn a_patient_from_the_study_attributes() {
        let p = patient(&summary(), Some("urn:oid:1.2")).unwrap();
        assert_eq!(
            p["identifier"][0],
            json!({"system": "urn:oid:1.2", "value": "P1"})
        );
        assert_eq!(p["name"][0]["family"], "Doe");
        assert_eq!(p["name"][0]["given"], json!(["Jane", "Q"]));
        assert_eq!(p["gender"], "female");
        assert_eq!(p["birthDate"], "1980-01-02");
        assert_eq!(patient_identifier(None, "P1"), "P1");
    }
}
