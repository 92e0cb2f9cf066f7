//! Property test: random searches over random resources. What the server answers (index rows,
//! SQL) must equal an in-memory evaluation of the same query over the same JSON, written
//! independently here from the FHIR search rules. Deterministic (seeded), so a failure
//! reproduces; the failing query is printed.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use common::*;
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const FAMILIES: &[&str] = &[
    "Müller", "Muller", "Smith", "Smyth", "García", "Garcia", "Ng", "Nguyen",
];
const GIVENS: &[&str] = &["Anna", "Ann", "Élodie", "Bob", "Robert", "Zoë"];
const GENDERS: &[&str] = &["male", "female", "other", "unknown"];
const CODES: &[(&str, &str)] = &[
    ("http://loinc.org", "8867-4"),
    ("http://loinc.org", "29463-7"),
    ("http://loinc.org", "8310-5"),
    ("http://snomed.info/sct", "8867-4"),
];

fn day(rng: &mut StdRng) -> NaiveDate {
    NaiveDate::from_ymd_opt(2019, 1, 1).unwrap() + Duration::days(rng.random_range(0..800))
}

fn patient(rng: &mut StdRng, i: usize) -> Value {
    let mut p = json!({
        "resourceType": "Patient", "id": format!("p{i}"),
        "gender": GENDERS[rng.random_range(0..GENDERS.len())],
        "name": [{"family": FAMILIES[rng.random_range(0..FAMILIES.len())],
                  "given": [GIVENS[rng.random_range(0..GIVENS.len())]]}],
        "active": rng.random_bool(0.5),
    });
    if rng.random_bool(0.8) {
        p["birthDate"] = json!(day(rng).to_string());
    }
    p
}

fn observation(rng: &mut StdRng, i: usize, patients: usize) -> Value {
    let (system, code) = CODES[rng.random_range(0..CODES.len())];
    let mut o = json!({
        "resourceType": "Observation", "id": format!("o{i}"),
        "status": if rng.random_bool(0.8) { "final" } else { "amended" },
        "code": {"coding": [{"system": system, "code": code}]},
        "effectiveDateTime": day(rng).to_string(),
    });
    // Mostly a Patient, sometimes by absolute URL, sometimes a Group, sometimes no subject:
    // `patient` is `subject` where it refers to a Patient, answered from `subject`'s rows.
    let subject = match rng.random_range(0..20) {
        0..=1 => Some(format!("Group/g{}", rng.random_range(0..4))),
        2..=3 => Some(format!(
            "http://example.org/fhir/Patient/p{}",
            rng.random_range(0..patients)
        )),
        4 => None,
        _ => Some(format!("Patient/p{}", rng.random_range(0..patients))),
    };
    if let Some(r) = subject {
        o["subject"] = json!({ "reference": r });
    }
    if rng.random_bool(0.9) {
        let v = f64::from(rng.random_range(300..1200)) / 10.0;
        o["valueQuantity"] =
            json!({"value": v, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"});
    }
    // Some have components (a panel's parts): the combo-* parameters search the Observation's
    // own code and value and those of its components together.
    if rng.random_bool(0.3) {
        let parts: Vec<Value> = (0..rng.random_range(1..=2))
            .map(|_| {
                let (system, code) = CODES[rng.random_range(0..CODES.len())];
                let v = f64::from(rng.random_range(300..1200)) / 10.0;
                json!({"code": {"coding": [{"system": system, "code": code}]},
                       "valueQuantity": {"value": v, "unit": "kg",
                                         "system": "http://unitsofmeasure.org", "code": "kg"}})
            })
            .collect();
        o["component"] = json!(parts);
    }
    o
}

/// The Observation itself, then each of its components: the repetitions a combo-* parameter
/// looks at.
fn repetitions(o: &Value) -> Vec<&Value> {
    std::iter::once(o)
        .chain(o["component"].as_array().into_iter().flatten())
        .collect()
}

fn has_code(r: &Value, system: Option<&str>, code: &str) -> bool {
    r["code"]["coding"][0]["code"] == code
        && system.is_none_or(|s| r["code"]["coding"][0]["system"] == s)
}

fn quantity_matches(r: &Value, prefix: &str, x: f64) -> bool {
    r["valueQuantity"]["value"]
        .as_f64()
        .is_some_and(|v| match prefix {
            "gt" => v > x,
            "lt" => v < x,
            "ge" => v >= x,
            "le" => v <= x,
            _ => v >= x - 0.5 && v < x + 0.5,
        })
}

fn fold(s: &str) -> String {
    s.to_lowercase()
        .replace(['ü'], "u")
        .replace(['í'], "i")
        .replace(['é', 'É'], "e")
        .replace(['ë'], "e")
}

/// [start, end) in days of a date search value at day, month or year precision.
fn span(v: &str) -> (NaiveDate, NaiveDate) {
    let parts: Vec<i32> = v.split('-').map(|p| p.parse().unwrap()).collect();
    match parts.as_slice() {
        [y] => (ymd(*y, 1, 1), ymd(y + 1, 1, 1)),
        [y, m] => {
            let next = if *m == 12 {
                ymd(y + 1, 1, 1)
            } else {
                ymd(*y, *m as u32 + 1, 1)
            };
            (ymd(*y, *m as u32, 1), next)
        }
        [y, m, d] => {
            let s = ymd(*y, *m as u32, *d as u32);
            (s, s + Duration::days(1))
        }
        _ => unreachable!(),
    }
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// FHIR R4 §3.1.1.4.6 prefixes on ranges: target [lo, hi) against search [s, e).
fn range_matches(prefix: &str, lo: f64, hi: f64, s: f64, e: f64) -> bool {
    match prefix {
        "eq" => lo >= s && hi <= e,
        "ne" => !(lo >= s && hi <= e),
        "gt" => hi > e,
        "lt" => lo < s,
        "ge" => hi > s,
        "le" => lo < e,
        "sa" => lo >= e,
        "eb" => hi <= s,
        _ => unreachable!(),
    }
}

fn days(d: NaiveDate) -> f64 {
    f64::from(d.signed_duration_since(ymd(2000, 1, 1)).num_days() as i32)
}

type Pred = Box<dyn Fn(&Value) -> bool>;

/// The type and id an Observation's subject names, from relative or absolute references.
fn subject_target(o: &Value) -> Option<(&str, &str)> {
    let r = o["subject"]["reference"].as_str()?;
    let mut parts = r.rsplitn(3, '/');
    let id = parts.next()?;
    Some((parts.next()?, id))
}

fn subject_patient(o: &Value) -> Option<&str> {
    subject_target(o)
        .filter(|(t, _)| *t == "Patient")
        .map(|(_, i)| i)
}

/// What chains and `_has` look through.
struct Data {
    patients: Arc<Vec<Value>>,
    observations: Arc<Vec<Value>>,
}

/// One random clause: its query-string form and its in-memory meaning.
fn clause(rng: &mut StdRng, rt: &str, data: &Data) -> (String, Pred) {
    const PREFIXES: &[&str] = &["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"];
    let prefix = PREFIXES[rng.random_range(0..PREFIXES.len())].to_owned();
    let date_value = |rng: &mut StdRng| {
        let d = day(rng);
        match rng.random_range(0..3) {
            0 => d.format("%Y").to_string(),
            1 => d.format("%Y-%m").to_string(),
            _ => d.to_string(),
        }
    };
    if rt == "Patient" {
        match rng.random_range(0..6) {
            5 => {
                let (sys, code) = CODES[rng.random_range(0..CODES.len())];
                let obs = Arc::clone(&data.observations);
                (
                    format!("_has:Observation:patient:code={sys}|{code}"),
                    Box::new(move |p: &Value| {
                        obs.iter().any(|o| {
                            subject_patient(o) == p["id"].as_str() && has_code(o, Some(sys), code)
                        })
                    }),
                )
            }
            0 => {
                let a = GENDERS[rng.random_range(0..4)];
                let b = GENDERS[rng.random_range(0..4)];
                (
                    format!("gender={a},{b}"),
                    Box::new(move |p: &Value| p["gender"] == a || p["gender"] == b),
                )
            }
            1 => {
                let v = date_value(rng);
                let (s, e) = span(&v);
                (
                    format!("birthdate={prefix}{v}"),
                    Box::new(move |p: &Value| {
                        p["birthDate"].as_str().is_some_and(|b| {
                            let d: NaiveDate = b.parse().unwrap();
                            range_matches(&prefix, days(d), days(d) + 1.0, days(s), days(e))
                        })
                    }),
                )
            }
            2 => {
                let f = FAMILIES[rng.random_range(0..FAMILIES.len())];
                let cut = rng.random_range(1..=f.chars().count());
                let pre: String = f.chars().take(cut).collect();
                let (modifier, pf) = match rng.random_range(0..3) {
                    0 => ("", fold(&pre)),
                    1 => (":exact", f.to_owned()),
                    _ => (
                        ":contains",
                        fold(&f.chars().skip(cut / 2).take(2).collect::<String>()),
                    ),
                };
                let m = modifier.to_owned();
                let q = format!(
                    "family{m}={}",
                    if m == ":exact" {
                        f.to_owned()
                    } else {
                        pf.clone()
                    }
                );
                (
                    q,
                    Box::new(move |p: &Value| {
                        let fam = p["name"][0]["family"].as_str().unwrap();
                        match m.as_str() {
                            "" => fold(fam).starts_with(&pf),
                            ":exact" => fam == pf,
                            _ => fold(fam).contains(&pf),
                        }
                    }),
                )
            }
            3 => {
                let b = rng.random_bool(0.5);
                (
                    format!("active={b}"),
                    Box::new(move |p: &Value| p["active"] == b),
                )
            }
            _ => {
                let missing = rng.random_bool(0.5);
                (
                    format!("birthdate:missing={missing}"),
                    Box::new(move |p: &Value| p.get("birthDate").is_none() == missing),
                )
            }
        }
    } else {
        match rng.random_range(0..7) {
            5 => {
                let (sys, code) = CODES[rng.random_range(0..CODES.len())];
                let system = rng.random_bool(0.5).then_some(sys);
                let value = system.map_or(code.to_owned(), |s| format!("{s}|{code}"));
                if rng.random_bool(0.3) {
                    (
                        format!("combo-code:not={value}"),
                        Box::new(move |o: &Value| {
                            !repetitions(o).iter().any(|r| has_code(r, system, code))
                        }),
                    )
                } else {
                    (
                        format!("combo-code={value}"),
                        Box::new(move |o: &Value| {
                            repetitions(o).iter().any(|r| has_code(r, system, code))
                        }),
                    )
                }
            }
            6 => {
                let n = rng.random_range(30..120);
                let x = f64::from(n);
                let p = ["gt", "lt", "ge", "le", "eq"][rng.random_range(0..5)];
                if rng.random_bool(0.5) {
                    (
                        format!("combo-value-quantity={p}{n}"),
                        Box::new(move |o: &Value| {
                            repetitions(o).iter().any(|r| quantity_matches(r, p, x))
                        }),
                    )
                } else {
                    let (sys, code) = CODES[rng.random_range(0..CODES.len())];
                    (
                        format!("combo-code-value-quantity={sys}|{code}${p}{n}"),
                        Box::new(move |o: &Value| {
                            repetitions(o)
                                .iter()
                                .any(|r| has_code(r, Some(sys), code) && quantity_matches(r, p, x))
                        }),
                    )
                }
            }
            0 => {
                let (sys, code) = CODES[rng.random_range(0..CODES.len())];
                if rng.random_bool(0.5) {
                    (
                        format!("code={sys}|{code}"),
                        Box::new(move |o: &Value| {
                            o["code"]["coding"][0]["system"] == sys
                                && o["code"]["coding"][0]["code"] == code
                        }),
                    )
                } else {
                    (
                        format!("code={code}"),
                        Box::new(move |o: &Value| o["code"]["coding"][0]["code"] == code),
                    )
                }
            }
            1 => {
                let v = date_value(rng);
                let (s, e) = span(&v);
                (
                    format!("date={prefix}{v}"),
                    Box::new(move |o: &Value| {
                        let d: NaiveDate =
                            o["effectiveDateTime"].as_str().unwrap().parse().unwrap();
                        range_matches(&prefix, days(d), days(d) + 1.0, days(s), days(e))
                    }),
                )
            }
            2 => {
                let n = rng.random_range(30..120);
                let x = f64::from(n);
                let p = ["gt", "lt", "ge", "le", "eq"][rng.random_range(0..5)];
                (
                    format!("value-quantity={p}{n}"),
                    Box::new(move |o: &Value| quantity_matches(o, p, x)),
                )
            }
            3 => {
                let status = if rng.random_bool(0.5) {
                    "final"
                } else {
                    "amended"
                };
                (
                    format!("status:not={status}"),
                    Box::new(move |o: &Value| o["status"] != status),
                )
            }
            _ => {
                let id = format!("p{}", rng.random_range(0..40));
                match rng.random_range(0..6) {
                    0 => (
                        format!("subject=Patient/{id}"),
                        Box::new(move |o: &Value| subject_patient(o) == Some(id.as_str())),
                    ),
                    1 => (
                        format!("patient={id}"),
                        Box::new(move |o: &Value| subject_patient(o) == Some(id.as_str())),
                    ),
                    2 => (
                        format!("patient=Patient/{id}"),
                        Box::new(move |o: &Value| subject_patient(o) == Some(id.as_str())),
                    ),
                    3 => {
                        let missing = rng.random_bool(0.5);
                        let code = if rng.random_bool(0.5) {
                            "patient"
                        } else {
                            "subject"
                        };
                        (
                            format!("{code}:missing={missing}"),
                            Box::new(move |o: &Value| {
                                let absent = if code == "patient" {
                                    subject_patient(o).is_none()
                                } else {
                                    o.get("subject").is_none()
                                };
                                absent == missing
                            }),
                        )
                    }
                    4 => {
                        let g = format!("g{}", rng.random_range(0..4));
                        (
                            format!("subject=Group/{g}"),
                            Box::new(move |o: &Value| {
                                subject_target(o) == Some(("Group", g.as_str()))
                            }),
                        )
                    }
                    _ => {
                        // The family names are few, so a chain matches many.
                        let f = FAMILIES[rng.random_range(0..FAMILIES.len())];
                        let patients = Arc::clone(&data.patients);
                        (
                            format!("patient.family:exact={f}"),
                            Box::new(move |o: &Value| {
                                patients.iter().any(|p| {
                                    subject_patient(o) == p["id"].as_str()
                                        && p["name"][0]["family"] == f
                                })
                            }),
                        )
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_search_equals_in_memory_evaluation() {
    let s = start().await;
    let mut rng = StdRng::seed_from_u64(20261122);
    let patients: Vec<Value> = (0..40).map(|i| patient(&mut rng, i)).collect();
    let observations: Vec<Value> = (0..160).map(|i| observation(&mut rng, i, 40)).collect();
    let groups: Vec<Value> = (0..4)
        .map(|i| json!({"resourceType": "Group", "id": format!("g{i}"), "type": "person", "actual": true}))
        .collect();
    let s = &s;
    futures_util::stream::iter(groups.iter().chain(&patients).chain(&observations))
        .for_each_concurrent(8, |r| async move {
            let path = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert!(s.put(&path, r).await.status().is_success(), "{path}");
        })
        .await;

    let data = Data {
        patients: Arc::new(patients.clone()),
        observations: Arc::new(observations.clone()),
    };
    let mut failures = Vec::new();
    let mut non_empty = 0;
    for case in 0..300 {
        let rt = if case % 2 == 0 {
            "Patient"
        } else {
            "Observation"
        };
        let pool = if rt == "Patient" {
            &patients
        } else {
            &observations
        };
        let n = rng.random_range(1..=3);
        let (parts, preds): (Vec<String>, Vec<Pred>) =
            (0..n).map(|_| clause(&mut rng, rt, &data)).unzip();
        let query = format!("{rt}?{}&_count=1000", parts.join("&"));
        let want: BTreeSet<String> = pool
            .iter()
            .filter(|r| preds.iter().all(|p| p(r)))
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let url = s.url(&query.replace('|', "%7C"));
        let r = s.http.get(url).send().await.unwrap();
        let status = r.status();
        let b: Value = r.json().await.unwrap();
        let got: BTreeSet<String> = b["entry"]
            .as_array()
            .map(|es| {
                es.iter()
                    .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        non_empty += usize::from(!want.is_empty());
        if !status.is_success() || got != want {
            failures.push(format!(
                "{query} ({status})\n   want {want:?}\n    got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 300 queries disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The comparison means something only if many queries match something.
    assert!(
        non_empty > 100,
        "only {non_empty} of 300 queries matched anything"
    );
    eprintln!("{non_empty} of 300 random queries had matches; all agreed");
}
