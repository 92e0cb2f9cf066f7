use super::*;

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn one(rt: &str, name: &str, value: &str) -> Filter {
    let q = parse(rt, &pairs(&[(name, value)])).unwrap();
    assert!(q.unknown.is_empty(), "{:?}", q.unknown);
    q.clauses.into_iter().next().unwrap()
}

#[test]
fn tokens_follow_the_four_forms_and_escapes() {
    let Filter::Token { values: t, not, .. } = one(
        "Patient",
        "identifier",
        "urn:a|1,|2,urn:b|,3,urn:c|a\\,b\\|c",
    ) else {
        panic!()
    };
    assert!(!not);
    assert_eq!(
        t[0],
        TokenValue {
            system: Some(Some("urn:a".into())),
            code: Some("1".into())
        }
    );
    assert_eq!(
        t[1],
        TokenValue {
            system: Some(None),
            code: Some("2".into())
        }
    );
    assert_eq!(
        t[2],
        TokenValue {
            system: Some(Some("urn:b".into())),
            code: None
        }
    );
    assert_eq!(t[3].system, None);
    assert_eq!(t[4].code.as_deref(), Some("a,b|c"));
}

#[test]
fn unknown_and_result_parameters_are_separated() {
    let q = parse(
        "Patient",
        &pairs(&[
            ("_id", "a,b"),
            ("nonsense", "x"),
            ("_format", "json"),
            ("_count", "5"),
            ("_sort", "-birthdate,name"),
        ]),
    )
    .unwrap();
    assert_eq!(q.clauses, vec![Filter::Id(vec!["a".into(), "b".into()])]);
    assert_eq!(q.unknown.len(), 1);
    assert_eq!(q.unknown[0].0, "nonsense");
    assert_eq!(q.count, Some(5));
    assert_eq!(q.result.sort.len(), 2);
    assert!(q.result.sort[0].descending);
}

#[test]
fn strings_fold_case_and_accents_except_exact() {
    let Filter::String { how, values, .. } = one("Patient", "name", "Müller") else {
        panic!()
    };
    assert_eq!((how, values[0].as_str()), (StringMatch::Prefix, "muller"));
    let Filter::String { how, values, .. } = one("Patient", "name:exact", "Müller") else {
        panic!()
    };
    assert_eq!((how, values[0].as_str()), (StringMatch::Exact, "Müller"));
}

#[test]
fn numbers_carry_their_implicit_precision() {
    let Filter::Number { values, .. } = one("RiskAssessment", "probability", "gt0.8") else {
        panic!()
    };
    assert_eq!(values[0].prefix, Prefix::Gt);
    let Filter::Number { values, .. } = one("RiskAssessment", "probability", "100") else {
        panic!()
    };
    assert_eq!(
        (values[0].lo.as_str(), values[0].hi.as_str()),
        ("99.5", "100.5")
    );
}

#[test]
fn quantities_take_system_and_code() {
    let Filter::Quantity { values, .. } = one(
        "Observation",
        "value-quantity",
        "le5.4|http://unitsofmeasure.org|mg",
    ) else {
        panic!()
    };
    assert_eq!(values[0].number.prefix, Prefix::Le);
    assert_eq!(values[0].code.as_deref(), Some("mg"));
    let Filter::Quantity { values, .. } = one("Observation", "value-quantity", "5.4||mg") else {
        panic!()
    };
    assert_eq!(values[0].system, None);
}

#[test]
fn references_chains_and_has() {
    let Filter::Reference { values, .. } = one("Observation", "subject", "Patient/1") else {
        panic!()
    };
    assert_eq!(values[0].target_type.as_deref(), Some("Patient"));
    let Filter::Reference { values, .. } = one("Observation", "subject:Patient", "1") else {
        panic!()
    };
    assert_eq!(values[0].target_type.as_deref(), Some("Patient"));
    let Filter::Chain { targets, .. } = one("Observation", "subject:Patient.name", "peter") else {
        panic!()
    };
    assert_eq!(targets.len(), 1);
    // Untyped: every target type that has `name`.
    let Filter::Chain { targets, .. } = one("Observation", "subject.name", "peter") else {
        panic!()
    };
    assert!(targets.iter().any(|(t, _)| t == "Patient"));
    let Filter::Chain { targets, .. } = one(
        "DiagnosticReport",
        "result.subject:Patient.organization.name",
        "acme",
    ) else {
        panic!()
    };
    assert!(matches!(*targets[0].1, Filter::Chain { .. }));
    let Filter::Has {
        res_type, inner, ..
    } = one("Patient", "_has:Observation:patient:code", "1234-5")
    else {
        panic!()
    };
    assert_eq!(res_type, "Observation");
    assert!(matches!(*inner, Filter::Token { .. }));
    let nested = one(
        "Patient",
        "_has:Observation:patient:_has:AuditEvent:entity:agent",
        "Practitioner/1",
    );
    let Filter::Has { inner, .. } = nested else {
        panic!()
    };
    assert!(matches!(*inner, Filter::Has { .. }));
}

#[test]
fn a_narrowed_reference_parameter_searches_its_rows_parameter_of_its_type() {
    let patient = |v: &str| ReferenceValue {
        target_type: Some("Patient".into()),
        id: Some(v.into()),
        url: None,
        version: None,
    };
    for value in ["p1", "Patient/p1"] {
        assert_eq!(
            one("Observation", "patient", value),
            Filter::Reference {
                param: "subject".into(),
                values: vec![patient("p1")],
            }
        );
    }
    // A Group is a subject, never a patient; nor is an absolute reference with no type.
    assert_eq!(
        one("Observation", "patient", "Group/g1,urn:uuid:1"),
        Filter::Id(vec![])
    );
    let Filter::Reference { param, values } = one(
        "Observation",
        "patient",
        "Group/g1,http://x.org/fhir/Patient/p2",
    ) else {
        panic!()
    };
    assert_eq!(param, "subject");
    assert_eq!(values.len(), 1);
    assert_eq!(
        values[0].url.as_deref(),
        Some("http://x.org/fhir/Patient/p2")
    );
    assert_eq!(
        one("Observation", "patient:missing", "true"),
        Filter::Missing {
            param: "subject".into(),
            kind: ParamType::Reference,
            missing: true,
            target_type: Some("Patient".into()),
        }
    );
    let Filter::Chain { param, targets } = one("Observation", "patient.name", "peter") else {
        panic!()
    };
    assert_eq!(param, "subject");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].0, "Patient");
    let Filter::Has { param, .. } = one("Patient", "_has:Observation:patient:code", "1") else {
        panic!()
    };
    assert_eq!(param, "subject");
    // Its identifiers are its own rows.
    let Filter::Token { param, .. } = one("Observation", "patient:identifier", "urn:mrn|1") else {
        panic!()
    };
    assert_eq!(param, "patient:identifier");
    // A Group has no patients, and a chain through a patient cannot reach a Group.
    let q = parse("Group", &pairs(&[("_has:Observation:patient:code", "1")]));
    assert!(q.is_err());
    let q = parse("Observation", &pairs(&[("patient:Group.name", "x")]));
    assert!(q.is_err());
}

#[test]
fn composites_parse_each_component_as_its_own_type() {
    for code in ["code-value-quantity", "component-code-value-quantity"] {
        let f = one("Observation", code, "http://loinc.org|8480-6$gt100");
        let Filter::Composite { values, .. } = f else {
            panic!()
        };
        assert!(matches!(values[0][0], Filter::Token { .. }));
        assert!(matches!(values[0][1], Filter::Quantity { .. }));
    }
    let err = parse(
        "Observation",
        &pairs(&[("component-code-value-quantity", "http://loinc.org|8480-6")]),
    );
    assert!(err.is_err(), "one component missing");
}

#[test]
fn bad_values_and_modifiers_are_errors() {
    let err = |rt: &str, n: &str, v: &str| parse(rt, &pairs(&[(n, v)])).unwrap_err();
    assert!(matches!(
        err("Patient", "_lastUpdated", "gt20x"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "birthdate", "2020-13-45"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "value-quantity", "abc|x|y"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "gender:above", "http://vs"),
        SearchError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "gender:narrower", "x"),
        SearchError::UnsupportedModifier { .. }
    ));
    assert!(matches!(
        err("Patient", "gender.name", "x"),
        SearchError::Invalid(_)
    ));
    assert!(matches!(
        err("Patient", "name:missing", "maybe"),
        SearchError::InvalidValue { .. }
    ));
    assert!(parse("Patient", &pairs(&[("_count", "-1")])).is_err());
    assert!(matches!(
        err("Patient", "_sort", "nonexistent"),
        SearchError::Invalid(_)
    ));
    assert!(matches!(
        err("Patient", "_include", "Patient:gender"),
        SearchError::InvalidValue { .. }
    ));
}

#[test]
fn date_prefixes() {
    let q = parse(
        "Patient",
        &pairs(&[("_lastUpdated", "ge2024-01-01"), ("_lastUpdated", "lt2025")]),
    )
    .unwrap();
    assert_eq!(q.clauses.len(), 2);
    let Filter::LastUpdated(d) = &q.clauses[0] else {
        panic!()
    };
    assert_eq!(d[0].prefix, Prefix::Ge);
}

#[test]
fn and_of_dates_on_a_single_valued_parameter_is_one_row_condition() {
    let q = parse(
        "Observation",
        &pairs(&[
            ("date", "ge2020-01-01"),
            ("date", "lt2020-02-01"),
            ("code", "x"),
        ]),
    )
    .unwrap();
    assert!(matches!(&q.clauses[0], Filter::DateAll { groups, .. } if groups.len() == 2));
    // Encounter.location.period repeats: each clause stays its own EXISTS.
    let q = parse(
        "Encounter",
        &pairs(&[("location-period", "ge2020"), ("location-period", "lt2021")]),
    )
    .unwrap();
    assert_eq!(q.clauses.len(), 2);
    assert!(matches!(q.clauses[0], Filter::Date { .. }));
    assert!(single_valued_path("Patient", "Patient.birthDate"));
    assert!(!single_valued_path("Patient", "Patient.name.given"));
}
