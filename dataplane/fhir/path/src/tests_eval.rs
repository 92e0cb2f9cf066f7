//! Evaluator tests: navigation, choice types, every function, resolve, type tests and
//! three-valued logic.

use serde_json::{Value, json};

use crate::{EvalError, Expression, Item};

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "active": true,
        "extension": [
            {"url": "http://ext/a", "valueString": "A"},
            {"url": "http://ext/b", "valueCodeableConcept": {"text": "B"}}
        ],
        "name": [
            {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
            {"use": "usual", "given": ["Jim"], "_given": [{"extension": []}]},
            {"use": "maiden", "family": "Windsor", "given": [null, "Pete"]}
        ],
        "telecom": [
            {"system": "phone", "value": "555"},
            {"system": "email", "value": "p@example.org"},
            {"system": "email", "value": "p@example.org"}
        ],
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://ext/time", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "deceasedDateTime": "2015-02-14T13:42:00+10:00",
        "multipleBirthInteger": 2,
        "managingOrganization": {"reference": "Organization/1"},
        "generalPractitioner": [
            {"reference": "Practitioner/gp/_history/2"},
            {"reference": "http://example.org/fhir/PractitionerRole/r1"},
            {"reference": "#c1"},
            {"reference": "urn:uuid:not-in-a-bundle"},
            {"display": "no reference"}
        ],
        "contained": [{"resourceType": "Practitioner", "id": "c1", "name": [{"family": "Contained"}]}],
        "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}]
    })
}

fn eval<'a>(src: &str, r: &'a Value) -> Vec<Item<'a>> {
    try_eval(src, r).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn try_eval<'a>(src: &str, r: &'a Value) -> Result<Vec<Item<'a>>, EvalError> {
    Expression::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .evaluate(r)
}

/// Results as display strings, for compact assertions.
fn texts(src: &str, r: &Value) -> Vec<String> {
    eval(src, r)
        .iter()
        .map(|i| match i {
            Item::Node { value, .. } => match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            Item::Resolved { resource_type, id } => format!("{resource_type}/{id}"),
            other => crate::ops::text(other)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
        })
        .collect()
}

fn boolean(src: &str, r: &Value) -> Option<bool> {
    match eval(src, r).as_slice() {
        [] => None,
        [Item::Boolean(b)] => Some(*b),
        other => panic!("{src}: not a boolean: {other:?}"),
    }
}

#[test]
fn navigation_flattens_arrays_and_skips_nulls_and_underscore_siblings() {
    let p = patient();
    assert_eq!(eval("Patient.name", &p).len(), 3);
    assert_eq!(
        texts("Patient.name.given", &p),
        ["Peter", "James", "Jim", "Pete"]
    );
    assert_eq!(texts("name.family", &p), ["Chalmers", "Windsor"]);
    assert_eq!(texts("Patient.birthDate", &p), ["1974-12-25"]);
    assert!(eval("Patient.nothing.here", &p).is_empty());
    assert!(eval("Observation.code", &p).is_empty());
    assert_eq!(texts("Resource.id", &p), ["p1"]);
    assert_eq!(texts("DomainResource.id", &p), ["p1"]);
    assert_eq!(eval("Patient", &p)[0].type_name(), Some("Patient"));
    assert_eq!(texts("Patient.name[1].given", &p), ["Jim"]);
    assert!(eval("Patient.name[5]", &p).is_empty());
    assert_eq!(texts("%resource.id | %context.id", &p), ["p1"]);
    // Nodes borrow from the input instead of copying it.
    let names = eval("Patient.name", &p);
    assert!(std::ptr::eq(names[0].as_node().unwrap(), &p["name"][0]));
}

#[test]
fn choice_elements_are_typed_by_their_suffix() {
    let p = patient();
    let d = eval("Patient.deceased", &p);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].type_name(), Some("dateTime"));
    assert_eq!(
        eval("Patient.multipleBirth", &p)[0].type_name(),
        Some("integer")
    );
    let ext = eval("Patient.extension.value", &p);
    assert_eq!(
        ext.iter()
            .map(|i| i.type_name().unwrap())
            .collect::<Vec<_>>(),
        ["string", "CodeableConcept"]
    );
    let obs =
        json!({"resourceType": "Observation", "valueQuantity": {"value": 1}, "valueSet": "x"});
    assert_eq!(
        eval("Observation.value", &obs)[0].type_name(),
        Some("Quantity")
    );
    // `valueSet` is not a choice variant of `value`: "Set" is not an R4 type.
    let vs = json!({"resourceType": "X", "valueSet": "http://vs"});
    assert!(eval("value", &vs).is_empty());
    assert_eq!(eval("valueSet", &vs).len(), 1);
    // An exact key wins over choice variants.
    let q = json!({"value": 3, "valueString": "no"});
    assert_eq!(
        eval("value", &q),
        vec![Item::Node {
            value: &q["value"],
            fhir_type: None
        }]
    );
}

#[test]
fn type_tests_and_casts() {
    let p = patient();
    assert_eq!(boolean("Patient.deceased is dateTime", &p), Some(true));
    assert_eq!(boolean("Patient.deceased is DateTime", &p), Some(true));
    assert_eq!(boolean("Patient.deceased is FHIR.dateTime", &p), Some(true));
    assert_eq!(
        boolean("Patient.deceased is System.DateTime", &p),
        Some(true)
    );
    assert_eq!(boolean("Patient.deceased is boolean", &p), Some(false));
    assert_eq!(boolean("Patient.deceased.is(dateTime)", &p), Some(true));
    assert_eq!(boolean("Patient is Resource", &p), Some(true));
    assert_eq!(boolean("Patient is DomainResource", &p), Some(true));
    // Unknown node types: `is` is false, `as`/`ofType` fall back to the JSON shape.
    assert_eq!(boolean("Patient.birthDate is date", &p), Some(false));
    assert_eq!(eval("Patient.birthDate as date", &p).len(), 1);
    assert_eq!(eval("Patient.birthDate.ofType(string)", &p).len(), 1);
    assert!(eval("Patient.birthDate as boolean", &p).is_empty());
    assert_eq!(eval("Patient.name.ofType(HumanName)", &p).len(), 3);
    assert!(
        eval("Patient.name as Quantity", &p).len() == 3,
        "an object fits any complex type"
    );
    assert!(eval("Patient.active as integer", &p).is_empty());
    assert_eq!(eval("Patient.active as Boolean", &p).len(), 1);
    assert_eq!(
        eval("Patient.extension.value.as(CodeableConcept)", &p).len(),
        1
    );
    assert_eq!(texts("Patient.extension.value.ofType(string)", &p), ["A"]);
    assert_eq!(eval("(Patient.deceased as dateTime)", &p).len(), 1);
    assert!(eval("(Patient.deceased as boolean)", &p).is_empty());
    assert!(eval("Patient.deceased.as(Period)", &p).is_empty());
    // `as` filters a multi-item input (lenient, like HAPI); `is` needs a single item.
    assert_eq!(eval("Patient.extension.value as string", &p).len(), 1);
    assert!(matches!(
        try_eval("Patient.name is HumanName", &p),
        Err(EvalError::NotSingleton { .. })
    ));
    assert!(matches!(
        try_eval("Patient.name.is(HumanName)", &p),
        Err(EvalError::NotSingleton { .. })
    ));
    assert!(eval("{} is Patient", &p).is_empty());
    assert_eq!(
        boolean(
            "1 is Integer and 1.5 is Decimal and 'a' is String and true is Boolean",
            &p
        ),
        Some(true)
    );
    assert_eq!(
        boolean(
            "@2020 is Date and @2020-01-01T10:00 is DateTime and @T10:00 is Time",
            &p
        ),
        Some(true)
    );
    let obs = json!({"resourceType": "Observation", "valueAge": {"value": 3}});
    assert_eq!(boolean("Observation.value is Quantity", &obs), Some(true));
}

#[test]
fn resolve_parses_references_and_finds_embedded_resources() {
    let p = patient();
    let resolved = eval("Patient.managingOrganization.resolve()", &p);
    assert_eq!(
        resolved,
        vec![Item::Resolved {
            resource_type: "Organization".into(),
            id: "1".into()
        }]
    );
    assert_eq!(
        texts("Patient.generalPractitioner.resolve()", &p),
        [
            "Practitioner/gp",
            "PractitionerRole/r1",
            r#"{"resourceType":"Practitioner","id":"c1","name":[{"family":"Contained"}]}"#
        ]
    );
    let contained = eval("Patient.generalPractitioner[2].resolve()", &p);
    assert_eq!(contained[0].type_name(), Some("Practitioner"));
    assert_eq!(
        texts("Patient.generalPractitioner[2].resolve().name.family", &p),
        ["Contained"]
    );
    assert_eq!(
        eval(
            "Patient.generalPractitioner.where(resolve() is Practitioner)",
            &p
        )
        .len(),
        2
    );
    assert_eq!(
        eval(
            "Patient.generalPractitioner.where(resolve() is PractitionerRole)",
            &p
        )
        .len(),
        1
    );
    assert_eq!(
        eval("Patient.link.other.where(resolve() is Patient)", &p).len(),
        1
    );
    assert_eq!(texts("Patient.link.other.resolve().id", &p), ["p2"]);
    assert_eq!(
        boolean("Patient.managingOrganization.resolve() is Resource", &p),
        Some(true)
    );
    // A canonical with a version resolves by its URL's last two segments.
    let c = json!({"resourceType": "Measure", "library": ["http://hl7.org/fhir/Library/lib|1.0"]});
    assert_eq!(texts("Measure.library.resolve()", &c), ["Library/lib"]);

    let bundle = json!({
        "resourceType": "Bundle",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Composition", "subject": {"reference": "urn:uuid:2"}}},
            {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient", "id": "x"}}
        ]
    });
    let first = eval("Bundle.entry[0].resource", &bundle);
    assert_eq!(first[0].type_name(), Some("Composition"));
    assert_eq!(
        boolean("Bundle.entry[0].resource is Composition", &bundle),
        Some(true)
    );
    assert_eq!(
        eval(
            "Bundle.entry.resource.subject.where(resolve() is Patient)",
            &bundle
        )
        .len(),
        1
    );
    assert_eq!(
        texts("Bundle.entry.resource.ofType(Patient).id", &bundle),
        ["x"]
    );
}

#[test]
fn where_select_and_collection_functions() {
    let p = patient();
    assert_eq!(
        texts("Patient.telecom.where(system = 'email').value", &p),
        ["p@example.org", "p@example.org"]
    );
    assert_eq!(
        texts(
            "Patient.telecom.where(system = 'email').value.distinct()",
            &p
        ),
        ["p@example.org"]
    );
    assert_eq!(
        texts(
            "Patient.telecom.where(system = 'email') | Patient.telecom.where(system = 'email')",
            &p
        )
        .len(),
        1
    );
    assert_eq!(
        eval("Patient.telecom.value.combine(Patient.telecom.value)", &p).len(),
        6
    );
    assert_eq!(
        texts("Patient.telecom.value.union(Patient.telecom.value)", &p),
        ["555", "p@example.org"]
    );
    assert_eq!(
        texts("Patient.name.select(given.first())", &p),
        ["Peter", "Jim", "Pete"]
    );
    assert_eq!(texts("Patient.name.where($index = 1).use", &p), ["usual"]);
    assert_eq!(
        texts("Patient.name.given.first() | Patient.name.given.last()", &p),
        ["Peter", "Pete"]
    );
    assert_eq!(
        texts("Patient.name.given.tail()", &p),
        ["James", "Jim", "Pete"]
    );
    assert_eq!(
        texts("Patient.name.given.skip(1).take(2)", &p),
        ["James", "Jim"]
    );
    assert_eq!(texts("Patient.name.given.count()", &p), ["4"]);
    assert_eq!(boolean("Patient.name.exists()", &p), Some(true));
    assert_eq!(
        boolean("Patient.name.exists(use = 'nickname')", &p),
        Some(false)
    );
    assert_eq!(boolean("Patient.photo.empty()", &p), Some(true));
    assert_eq!(boolean("Patient.name.all(given.exists())", &p), Some(true));
    assert_eq!(
        boolean("Patient.name.all(family.exists())", &p),
        Some(false)
    );
    assert_eq!(boolean("{}.all(false)", &p), Some(true));
    assert_eq!(boolean("(true | false).anyTrue()", &p), Some(true));
    assert_eq!(boolean("(true | false).allTrue()", &p), Some(false));
    assert_eq!(boolean("(true | false).anyFalse()", &p), Some(true));
    assert_eq!(boolean("(false).allFalse()", &p), Some(true));
    assert_eq!(texts("(1 | 2 | 3).intersect(2 | 3 | 4)", &p), ["2", "3"]);
    assert_eq!(texts("(1 | 2 | 3).exclude(2)", &p), ["1", "3"]);
    assert_eq!(boolean("(1 | 2).subsetOf(1 | 2 | 3)", &p), Some(true));
    assert_eq!(boolean("(1 | 2).supersetOf(3)", &p), Some(false));
    assert_eq!(
        boolean("Patient.telecom.value.isDistinct()", &p),
        Some(false)
    );
    assert_eq!(
        texts("Patient.name.given.single()", &Value::Null),
        Vec::<String>::new()
    );
    assert!(matches!(
        try_eval("Patient.name.single()", &p),
        Err(EvalError::NotSingleton { .. })
    ));
    assert_eq!(texts("iif(Patient.active, 'yes', 'no')", &p), ["yes"]);
    assert_eq!(
        texts("iif(Patient.photo.exists(), 'yes')", &p),
        Vec::<String>::new()
    );
    assert_eq!(
        texts(
            "Patient.name.first().iif(use = 'official', family, 'x')",
            &p
        ),
        ["Chalmers"]
    );
    assert_eq!(texts("(1 | 2 | 3).aggregate($this + $total, 0)", &p), ["6"]);
    assert_eq!(texts("Patient.name.trace('n').count()", &p), ["3"]);
    assert_eq!(boolean("Patient.active.not()", &p), Some(false));
    assert!(eval("{}.not()", &p).is_empty());
    let tree = json!({"a": {"a": {"a": {}}}});
    assert_eq!(eval("repeat(a)", &tree).len(), 3);
    // Large unions and distinct() hash instead of comparing every pair.
    let many: Vec<Value> = (0..5000)
        .map(|i| json!({"code": format!("c{}", i % 2500)}))
        .collect();
    let vs = json!({"resourceType": "ValueSet", "c": many});
    assert_eq!(eval("ValueSet.c.code | ValueSet.c.code", &vs).len(), 2500);
    assert_eq!(eval("ValueSet.c.distinct()", &vs).len(), 2500);
}

#[test]
fn extensions_values_children_and_descendants() {
    let p = patient();
    assert_eq!(texts("Patient.extension('http://ext/a').value", &p), ["A"]);
    assert_eq!(
        texts("Patient.extension(%`ext-unknown`)", &p),
        Vec::<String>::new()
    );
    assert_eq!(boolean("Patient.birthDate.hasValue()", &p), Some(true));
    assert_eq!(boolean("Patient.name.first().hasValue()", &p), Some(false));
    assert_eq!(texts("Patient.active.getValue()", &p), ["true"]);
    let c = json!({"resourceType": "Basic", "a": 1, "_a": {"id": "x"}, "b": [{"c": 2}, {"c": 3}]});
    assert_eq!(texts("children()", &c), ["1", r#"{"c":2}"#, r#"{"c":3}"#]);
    assert_eq!(
        texts("descendants()", &c),
        ["1", r#"{"c":2}"#, r#"{"c":3}"#, "2", "3"]
    );
}

#[test]
fn string_functions() {
    // Parsed from text: `json!` would turn 1.50 into an f64 and lose the trailing zero.
    let r: Value = serde_json::from_str(r#"{"s": "Hello World", "n": 1.50, "e": ""}"#).unwrap();
    let t = |src: &str| texts(src, &r);
    assert_eq!(t("s.length()"), ["11"]);
    assert_eq!(t("s.upper()"), ["HELLO WORLD"]);
    assert_eq!(t("s.lower()"), ["hello world"]);
    assert_eq!(t("s.substring(6)"), ["World"]);
    assert_eq!(t("s.substring(0, 5)"), ["Hello"]);
    assert_eq!(t("s.substring(20)"), Vec::<String>::new());
    assert_eq!(t("'héllo'.substring(1, 3)"), ["éll"]);
    assert_eq!(t("s.indexOf('World')"), ["6"]);
    assert_eq!(t("s.indexOf('x')"), ["-1"]);
    assert_eq!(
        t("s.startsWith('Hell') and s.endsWith('ld') and s.contains('o W')"),
        ["true"]
    );
    assert_eq!(t("s.contains('xyz')"), ["false"]);
    assert_eq!(t("s.replace('o', '0')"), ["Hell0 W0rld"]);
    assert_eq!(t("'abc'.replace('', '-')"), ["-a-b-c-"]);
    assert_eq!(t("s.matches('^H.*d$')"), ["true"]);
    assert_eq!(t("s.matches('[0-9]')"), ["false"]);
    assert_eq!(
        t("s.replaceMatches('(\\\\w+) (\\\\w+)', '$2 $1')"),
        ["World Hello"]
    );
    let dynamic = "s.matches('^' & 'H')";
    assert_eq!(t(dynamic), ["true"]);
    assert!(matches!(
        try_eval("s.matches('(' & '')", &r),
        Err(EvalError::InvalidRegex { .. })
    ));
    assert_eq!(t("'  a b '.trim()"), ["a b"]);
    assert_eq!(t("'a,b'.split(',')"), ["a", "b"]);
    assert_eq!(t("('a' | 'b').join('-')"), ["a-b"]);
    assert_eq!(t("'ab'.toChars()"), ["a", "b"]);
    assert_eq!(t("n.toString()"), ["1.50"]);
    assert_eq!(t("e.length()"), ["0"]);
    assert_eq!(t("{}.upper()"), Vec::<String>::new());
    assert_eq!(t("s.startsWith({})"), Vec::<String>::new());
    assert_eq!(t("'a' & {} & 'b'"), ["ab"]);
    assert_eq!(t("'a' + 'b'"), ["ab"]);
    assert!(matches!(
        try_eval("('a' | 'b').upper()", &r),
        Err(EvalError::NotSingleton { count: 2, .. })
    ));
}

#[test]
fn conversions_and_math() {
    let r = json!({"i": 5, "d": 2.5, "s": "42", "b": true});
    let t = |src: &str| texts(src, &r);
    assert_eq!(t("s.toInteger() + 1"), ["43"]);
    assert_eq!(t("'4x'.toInteger()"), Vec::<String>::new());
    assert_eq!(t("'2.25'.toDecimal() * 2"), ["4.5"]);
    assert_eq!(t("i.toDecimal()"), ["5.0"]);
    assert_eq!(t("d.toInteger()"), Vec::<String>::new());
    assert_eq!(t("b.toInteger()"), ["1"]);
    assert_eq!(t("i.toString() & d.toString()"), ["52.5"]);
    assert_eq!(t("'yes'.toBoolean()"), ["true"]);
    assert_eq!(
        t("s.convertsToInteger() and 'x'.convertsToDecimal().not()"),
        ["true"]
    );
    assert_eq!(t("(-3).abs()"), ["3"]);
    assert_eq!(t("d.ceiling() | d.floor() | d.truncate()"), ["3", "2"]);
    assert_eq!(t("d.round()"), ["3.0"]);
    assert_eq!(t("3.14159.round(2)"), ["3.14"]);
    assert_eq!(t("16.sqrt()"), ["4.0"]);
    assert_eq!(t("2.power(10)"), ["1024"]);
    assert_eq!(t("100.log(10)"), ["2.0"]);
    assert_eq!(t("i + d"), ["7.5"]);
    assert_eq!(t("i - 7"), ["-2"]);
    assert_eq!(t("i / 2"), ["2.5"]);
    assert_eq!(t("i div 2"), ["2"]);
    assert_eq!(t("i mod 2"), ["1"]);
    assert_eq!(t("d mod 1"), ["0.5"]);
    assert_eq!(t("i / 0"), Vec::<String>::new());
    assert_eq!(t("i div 0"), Vec::<String>::new());
    assert_eq!(t("9223372036854775807 + 1"), Vec::<String>::new());
    assert_eq!(t("i + {}"), Vec::<String>::new());
    assert!(matches!(
        try_eval("'a' * 2", &r),
        Err(EvalError::TypeMismatch { .. })
    ));
    assert!(matches!(
        try_eval("-'a'", &r),
        Err(EvalError::WrongType { .. })
    ));
}

#[test]
fn equality_and_comparison() {
    let p = patient();
    assert_eq!(boolean("1 = 1.0", &p), Some(true));
    assert_eq!(boolean("Patient.multipleBirth = 2", &p), Some(true));
    assert_eq!(boolean("Patient.multipleBirth != 2", &p), Some(false));
    assert_eq!(boolean("'a' = 'A'", &p), Some(false));
    assert_eq!(boolean("'a' ~ 'A'", &p), Some(true));
    assert_eq!(boolean("' a  b' ~ 'a b'", &p), Some(true));
    assert_eq!(boolean("'a' !~ 'b'", &p), Some(true));
    assert_eq!(boolean("{} ~ {}", &p), Some(true));
    assert_eq!(boolean("1 = {}", &p), None);
    assert_eq!(boolean("Patient.name[0] = Patient.name[0]", &p), Some(true));
    assert_eq!(
        boolean("Patient.name[0] = Patient.name[1]", &p),
        Some(false)
    );
    assert_eq!(
        boolean("Patient.telecom[1] = Patient.telecom[2]", &p),
        Some(true),
        "deep JSON equality"
    );
    assert_eq!(boolean("(1 | 2) = (1 | 2)", &p), Some(true));
    assert_eq!(boolean("(1 | 2) = (2 | 1)", &p), Some(false));
    assert_eq!(boolean("(1 | 2) = 1", &p), Some(false));
    assert_eq!(boolean("'1' = 1", &p), Some(false));
    assert_eq!(boolean("Patient.active = true", &p), Some(true));
    assert_eq!(
        boolean("2 > 1.5 and 'b' > 'a' and 1 <= 1 and 1 >= 2 = false", &p),
        Some(true)
    );
    assert_eq!(boolean("1 < {}", &p), None);
    assert!(matches!(
        try_eval("'a' < 1", &p),
        Err(EvalError::TypeMismatch { .. })
    ));
    assert!(matches!(
        try_eval("Patient.name.given < 'z'", &p),
        Err(EvalError::NotSingleton { .. })
    ));
    assert_eq!(boolean("'Jim' in Patient.name.given", &p), Some(true));
    assert_eq!(
        boolean("Patient.name.given contains 'Bob'", &p),
        Some(false)
    );
    // Dates: precision and time zones.
    assert_eq!(boolean("Patient.birthDate = @1974-12-25", &p), Some(true));
    assert_eq!(boolean("Patient.birthDate < @2000-01-01", &p), Some(true));
    assert_eq!(boolean("Patient.birthDate > @1974", &p), None);
    assert_eq!(boolean("Patient.birthDate > @1973", &p), Some(true));
    assert_eq!(boolean("@2020-01-01 = @2020-01-01T00:00", &p), None);
    assert_eq!(
        boolean("@2020-01-01T10:00:00Z = @2020-01-01T11:00:00+01:00", &p),
        Some(true)
    );
    assert_eq!(
        boolean("@2020-01-01T00:30:00+01:00 < @2020-01-01", &p),
        None
    );
    assert_eq!(
        boolean("@2020-01-01T00:30:00+01:00 < @2020-01-01T00:00:00Z", &p),
        Some(true)
    );
    assert_eq!(
        boolean("Patient.deceased > @2015-02-14T03:00:00Z", &p),
        Some(true)
    );
    assert_eq!(boolean("@T10:00 < @T10:30", &p), Some(true));
    assert_eq!(boolean("@2020-02-01 ~ @2020-02", &p), Some(false));
    assert_eq!(
        boolean(
            "now() > @2020-01-01T00:00:00Z and today() > @2020-01-01",
            &p
        ),
        Some(true)
    );
    assert_eq!(eval("timeOfDay()", &p).len(), 1);
}

#[test]
fn three_valued_logic() {
    let r = json!({});
    let cases = [
        // (left, right, and, or, xor, implies)
        (
            "true",
            "true",
            Some(true),
            Some(true),
            Some(false),
            Some(true),
        ),
        (
            "true",
            "false",
            Some(false),
            Some(true),
            Some(true),
            Some(false),
        ),
        ("true", "{}", None, Some(true), None, None),
        (
            "false",
            "true",
            Some(false),
            Some(true),
            Some(true),
            Some(true),
        ),
        (
            "false",
            "false",
            Some(false),
            Some(false),
            Some(false),
            Some(true),
        ),
        ("false", "{}", Some(false), None, None, Some(true)),
        ("{}", "true", None, Some(true), None, Some(true)),
        ("{}", "false", Some(false), None, None, None),
        ("{}", "{}", None, None, None, None),
    ];
    for (l, rt, and, or, xor, implies) in cases {
        assert_eq!(
            boolean(&format!("({l}) and ({rt})"), &r),
            and,
            "{l} and {rt}"
        );
        assert_eq!(boolean(&format!("({l}) or ({rt})"), &r), or, "{l} or {rt}");
        assert_eq!(
            boolean(&format!("({l}) xor ({rt})"), &r),
            xor,
            "{l} xor {rt}"
        );
        assert_eq!(
            boolean(&format!("({l}) implies ({rt})"), &r),
            implies,
            "{l} implies {rt}"
        );
    }
    // A single non-Boolean item counts as true; several items are an error.
    assert_eq!(boolean("'x' and true", &r), Some(true));
    assert!(matches!(
        try_eval("(1 | 2) and true", &r),
        Err(EvalError::NotSingleton { .. })
    ));
    // Short-circuit: the right side is not evaluated when the left decides.
    assert_eq!(boolean("false and (1 | 2).single()", &r), Some(false));
}

#[test]
fn evaluate_on_uses_the_node_as_focus() {
    let obs = json!({
        "resourceType": "Observation", "id": "bp",
        "component": [
            {"code": {"text": "sys"}, "valueQuantity": {"value": 120}},
            {"code": {"text": "dia"}, "valueString": "n/a"}
        ]
    });
    let comps = eval("Observation.component", &obs);
    let value = Expression::parse("value.as(Quantity)").unwrap();
    let ctx = Expression::parse("%context.code.text | %resource.id").unwrap();
    assert_eq!(value.evaluate_on(&obs, comps[0].clone()).unwrap().len(), 1);
    assert!(
        value
            .evaluate_on(&obs, comps[1].clone())
            .unwrap()
            .is_empty()
    );
    let texts: Vec<_> = ctx
        .evaluate_on(&obs, comps[1].clone())
        .unwrap()
        .iter()
        .map(|i| i.as_str().map(str::to_owned))
        .collect();
    assert_eq!(texts, [Some("dia".to_owned()), Some("bp".to_owned())]);
    assert_eq!(
        Expression::parse("$this")
            .unwrap()
            .evaluate_on(&obs, Item::Integer(3))
            .unwrap(),
        vec![Item::Integer(3)]
    );
}

#[test]
fn misc_api() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expression>();
    let e = Expression::parse("Patient.name").unwrap();
    assert_eq!(e.source(), "Patient.name");
    assert_eq!(e.to_string(), "Patient.name");
    let p = patient();
    let owned = eval("Patient.name.given.first()", &p)
        .remove(0)
        .into_owned();
    assert_eq!(
        owned,
        crate::OwnedItem::Node {
            value: json!("Peter"),
            fhir_type: None
        }
    );
    assert!(matches!(
        try_eval("$total", &p),
        Err(EvalError::TotalOutsideAggregate)
    ));
    assert_eq!(
        EvalError::NotSingleton {
            operation: "upper",
            count: 2
        }
        .to_string(),
        "upper expects at most one item but got 2"
    );
    let sorted = |l: &[&str]| l.windows(2).all(|w| w[0] < w[1]);
    assert!(
        sorted(crate::RESOURCE_TYPES)
            && sorted(crate::COMPLEX_TYPES)
            && sorted(crate::PRIMITIVE_TYPES)
    );
}
