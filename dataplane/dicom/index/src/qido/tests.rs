use super::*;

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn parameters_parse_by_keyword_and_tag() {
    let q = QidoQuery::parse(
        Level::Study,
        &p(&[
            ("PatientID", "1CT1"),
            ("00080020", "20040101-"),
            ("includefield", "StudyDescription,00100040"),
            ("limit", "5"),
            ("fuzzymatching", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(q.limit, 5);
    assert!(q.fuzzy);
    assert_eq!(
        q.include,
        IncludeField::Tags(vec!["00081030".into(), "00100040".into()])
    );
    assert_eq!(q.match_tags().collect::<Vec<_>>(), ["00100020", "00080020"]);
}

#[test]
fn bad_parameters_are_errors_and_unmatchable_ones_warnings() {
    assert_eq!(
        QidoQuery::parse(Level::Study, &p(&[("Bogus", "1")])).unwrap_err(),
        QidoError::UnknownParameter("Bogus".into())
    );
    // Given twice, by keyword or tag, or as two limits: refused, as Azure's DuplicateAttribute.
    for twice in [
        [("PatientID", "A"), ("PatientID", "B")],
        [("PatientID", "A"), ("00100020", "B")],
        [("limit", "1"), ("Limit", "2")],
    ] {
        assert!(matches!(
            QidoQuery::parse(Level::Study, &p(&twice)).unwrap_err(),
            QidoError::DuplicateParameter(_)
        ));
    }
    let q = QidoQuery::parse(
        Level::Study,
        &p(&[
            ("includefield", "StudyDescription"),
            ("includefield", "00100040"),
        ]),
    )
    .unwrap();
    assert_eq!(
        q.include,
        IncludeField::Tags(vec!["00081030".into(), "00100040".into()]),
        "includefield may come more than once"
    );
    assert!(matches!(
        QidoQuery::parse(Level::Study, &p(&[("StudyDate", "2004")])).unwrap_err(),
        QidoError::InvalidValue { .. }
    ));
    assert!(QidoQuery::parse(Level::Study, &p(&[("limit", "201")])).is_err());
    assert!(QidoQuery::parse(Level::Study, &p(&[("StudyInstanceUID", "1.2.x")])).is_err());
    for name in ["StationName", "00081010", "00081032.00080100"] {
        let q = QidoQuery::parse(Level::Study, &p(&[(name, "CT1")])).unwrap();
        assert_eq!(q.warnings.len(), 1, "{name} is ignored with a warning");
    }
    let q = QidoQuery::parse(Level::Study, &p(&[("Modality", "CT")])).unwrap();
    assert_eq!(q.warnings.len(), 1, "a series attribute at study level");
}

#[test]
fn trailing_padding_is_dropped_and_other_nuls_refused() {
    let q = QidoQuery::parse(
        Level::Instance,
        &p(&[
            ("PatientID", "PNUL1\0"),
            ("PatientName", "Doe\0\0 "),
            ("AccessionNumber", "\0"),
        ]),
    )
    .unwrap();
    let values: Vec<&str> = q.filters.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["PNUL1", "Doe"], "an all-padding value matches all");
    for (name, value) in [
        ("PatientID", "P*\0X"),
        ("StudyDescription", "a\0b"),
        ("Modality", "\0CT"),
        ("00100010", "Doe\0^John"),
    ] {
        assert_eq!(
            QidoQuery::parse(Level::Instance, &p(&[(name, value)])).unwrap_err(),
            QidoError::Nul(name.into()),
            "{name}={value:?}"
        );
    }
}

#[test]
fn reserved_parameter_names_and_booleans_ignore_case() {
    let q = QidoQuery::parse(
        Level::Study,
        &p(&[
            ("Limit", "3"),
            ("OFFSET", "4"),
            ("fuzzyMatching", "TRUE"),
            ("IncludeField", "PatientAge"),
        ]),
    )
    .unwrap();
    assert_eq!((q.limit, q.offset, q.fuzzy), (3, 4, true));
    assert_eq!(q.include, IncludeField::Tags(vec!["00101010".into()]));
    let q = QidoQuery::parse(Level::Study, &p(&[("includeField", "ALL")])).unwrap();
    assert_eq!(q.include, IncludeField::All);
    let q = QidoQuery::parse(Level::Study, &p(&[("FuzzyMatching", "False")])).unwrap();
    assert!(!q.fuzzy);
    assert!(QidoQuery::parse(Level::Study, &p(&[("fuzzymatching", "yes")])).is_err());
    // Keywords stay exact.
    assert_eq!(
        QidoQuery::parse(Level::Study, &p(&[("patientid", "1")])).unwrap_err(),
        QidoError::UnknownParameter("patientid".into())
    );
}

#[test]
fn extended_tags_match_only_when_ready_and_enabled() {
    let tag = |status: &str, query_enabled: bool, errors: i64| ExtendedTag {
        tag: "00101010".into(),
        vr: "AS".into(),
        private_creator: None,
        level: "Study".into(),
        status: status.into(),
        query_enabled,
        operation: None,
        errors,
    };
    let parse =
        |t: ExtendedTag| QidoQuery::parse_with(Level::Study, &p(&[("PatientAge", "035Y")]), &[t]);
    let q = parse(tag("Ready", true, 0)).unwrap();
    assert_eq!((q.extended.len(), q.erroneous.len()), (1, 0));
    let e = parse(tag("Adding", true, 0)).unwrap_err().to_string();
    assert!(e.contains("not completed"), "{e}");
    let e = parse(tag("Ready", false, 3)).unwrap_err().to_string();
    assert!(
        e.contains("QueryStatus Disabled") && e.contains("3 instance"),
        "{e}"
    );
    // Enabled again by hand: matched, and the answer says which tags miss instances.
    let q = parse(tag("Ready", true, 3)).unwrap();
    assert_eq!(q.erroneous, ["PatientAge"]);
    assert_eq!(
        keyword_of("00091002"),
        "00091002",
        "private tags have no keyword"
    );
}

#[test]
fn wildcards_become_like_patterns() {
    assert_eq!(like_pattern("Doe*"), Some("Doe%".into()));
    assert_eq!(like_pattern("D?e_1"), Some("D_e\\_1".into()));
    assert_eq!(like_pattern("Doe"), None);
    assert_eq!(
        date_range("20040101-20041231"),
        Some((
            NaiveDate::from_ymd_opt(2004, 1, 1),
            NaiveDate::from_ymd_opt(2004, 12, 31)
        ))
    );
    assert_eq!(date_range("-"), None);
}
