//! Parser tests: precedence (observed through evaluation), literals, escapes, errors with
//! positions, and that no input makes parsing or evaluation panic.

use serde_json::{Value, json};

use crate::{Expression, Item, ParseError};

fn eval_str(src: &str) -> Vec<Item<'static>> {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let root = EMPTY.get_or_init(|| json!({"resourceType": "Basic"}));
    Expression::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .evaluate(root)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn err(src: &str) -> ParseError {
    match Expression::parse(src) {
        Ok(e) => panic!("{src} parsed: {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn precedence_follows_the_fhirpath_table() {
    let cases: &[(&str, Item<'static>)] = &[
        ("1 + 2 * 3", Item::Integer(7)),
        ("(1 + 2) * 3", Item::Integer(9)),
        ("10 - 4 - 3", Item::Integer(3)),
        ("7 div 2 * 2", Item::Integer(6)),
        ("7 mod 4 + 1", Item::Integer(4)),
        ("-2 + 5", Item::Integer(3)),
        ("-(2 + 5)", Item::Integer(-7)),
        ("'a' & 'b' = 'ab'", Item::Boolean(true)),
        ("1 + 1 is Integer", Item::Boolean(true)),
        ("2 > 1 = true", Item::Boolean(true)),
        ("(1 | 2 | 1).count() = 2", Item::Boolean(true)),
        ("1 | 2 = 1 | 2", Item::Boolean(true)),
        ("1 in 1 | 2 and true", Item::Boolean(true)),
        ("true or false and false", Item::Boolean(true)),
        ("false and true or true", Item::Boolean(true)),
        ("true xor true or true", Item::Boolean(true)),
        ("false implies false and false", Item::Boolean(true)),
        ("true implies false or true", Item::Boolean(true)),
        ("(1 | 2).count() * 2", Item::Integer(4)),
        ("'abc'.length() + 1", Item::Integer(4)),
        ("5.toString()", Item::String("5".into())),
        ("1.5 * 2", Item::Decimal(3.0)),
        ("3 / 2", Item::Decimal(1.5)),
        ("2 + 3 > 4 and 1 < 2", Item::Boolean(true)),
        ("'b' > 'a' != false", Item::Boolean(true)),
        ("(2 | 3) contains 3", Item::Boolean(true)),
    ];
    for (src, expected) in cases {
        assert_eq!(eval_str(src), vec![expected.clone()], "{src}");
    }
}

#[test]
fn literals_and_escapes() {
    let s = |src: &str| {
        eval_str(src)
            .first()
            .and_then(|i| i.as_str().map(str::to_owned))
    };
    assert_eq!(s(r"'it\'s'").as_deref(), Some("it's"));
    assert_eq!(s(r"'a\\b'").as_deref(), Some(r"a\b"));
    assert_eq!(s(r"'\n\t\r\f'").as_deref(), Some("\n\t\r\u{c}"));
    assert_eq!(s(r#"'\"\`\/'"#).as_deref(), Some("\"`/"));
    assert_eq!(s(r"'caf\u00e9'").as_deref(), Some("café"));
    assert_eq!(s("'ünïcödé'").as_deref(), Some("ünïcödé"));
    assert_eq!(
        eval_str("@2020-01-01"),
        vec![Item::Date("2020-01-01".into())]
    );
    assert_eq!(eval_str("@2020-01"), vec![Item::Date("2020-01".into())]);
    assert_eq!(
        eval_str("@2020-01-01T10:00:00.123+01:00"),
        vec![Item::DateTime("2020-01-01T10:00:00.123+01:00".into())]
    );
    assert_eq!(
        eval_str("@2020-01-01T10:00:00Z"),
        vec![Item::DateTime("2020-01-01T10:00:00Z".into())]
    );
    assert_eq!(eval_str("@2015T"), vec![Item::DateTime("2015".into())]);
    assert_eq!(eval_str("@T10:00"), vec![Item::Time("10:00".into())]);
    assert_eq!(eval_str("{}"), Vec::<Item>::new());
    assert_eq!(eval_str("true"), vec![Item::Boolean(true)]);
    assert_eq!(
        eval_str("9223372036854775807"),
        vec![Item::Integer(i64::MAX)]
    );
    assert_eq!(eval_str("0.25"), vec![Item::Decimal(0.25)]);
    assert_eq!(
        eval_str("%ucum"),
        vec![Item::String("http://unitsofmeasure.org".into())]
    );
    assert_eq!(
        eval_str("%`vs-administrative-gender`"),
        vec![Item::String(
            "http://hl7.org/fhir/ValueSet/administrative-gender".into()
        )]
    );
    assert_eq!(
        eval_str("1 /* inline */ + // to the end\n 2"),
        vec![Item::Integer(3)]
    );
}

#[test]
fn identifiers_keywords_and_type_specifiers() {
    let r = json!({"resourceType": "ValueSet", "expansion": {"contains": [{"code": "a"}, {"code": "b"}]}});
    let n = |src: &str| Expression::parse(src).unwrap().evaluate(&r).unwrap().len();
    // `contains` is an operator between operands and an element name after a dot.
    assert_eq!(n("ValueSet.expansion.contains.code"), 2);
    assert_eq!(n("ValueSet.`expansion`.`contains`"), 2);
    assert_eq!(n("ValueSet.expansion.contains.code contains 'a'"), 1);
    for src in [
        "x is FHIR.Quantity",
        "x as System.String",
        "x.ofType(FHIR.`Quantity`)",
        "x.as(Quantity).value",
        "(x as Quantity).value",
        "$this.x[0]",
        "x.where($index > 0 and $this.y.exists())",
        "x.aggregate($total + $this, 0)",
        "%resource.id | %context.id | %rootResource.id",
        "x.extension('http://a').value",
        "x.select(y).where(z)[1].first()",
    ] {
        Expression::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    }
}

#[test]
fn errors_point_at_the_problem() {
    use ParseError::*;
    assert_eq!(
        err("Patient.name."),
        UnexpectedEnd {
            expected: "a member or function name after '.'"
        }
    );
    assert!(
        matches!(err("Patient..name"), UnexpectedToken { position: 9, .. }),
        "{:?}",
        err("Patient..name")
    );
    assert!(matches!(
        err("Patient.name #"),
        UnexpectedChar {
            position: 14,
            found: '#'
        }
    ));
    assert!(matches!(err("'é' + #"), UnexpectedChar { position: 7, .. }));
    assert!(matches!(
        err("name.foo()"),
        UnknownFunction { position: 6, .. }
    ));
    assert!(matches!(
        err("name.where()"),
        WrongArgumentCount {
            position: 6,
            found: 0,
            ..
        }
    ));
    assert!(matches!(
        err("name.first(1)"),
        WrongArgumentCount { found: 1, .. }
    ));
    assert!(matches!(
        err("'abc"),
        Unterminated {
            position: 1,
            what: "string"
        }
    ));
    assert!(matches!(err("`abc"), Unterminated { position: 1, .. }));
    assert!(matches!(
        err("1 /* x"),
        Unterminated {
            position: 3,
            what: "comment"
        }
    ));
    assert!(matches!(err(r"'a\qb'"), InvalidEscape { position: 3, .. }));
    assert!(matches!(err(r"'\u12'"), InvalidEscape { position: 2, .. }));
    assert!(matches!(err(r"'\uD800'"), InvalidEscape { .. }));
    assert!(matches!(err("1 +"), UnexpectedEnd { .. }));
    assert!(matches!(err("(1 + 2"), UnexpectedEnd { .. }));
    assert!(matches!(err("1 2"), UnexpectedToken { position: 3, .. }));
    assert!(matches!(err("%foo"), UnknownVariable { position: 1, .. }));
    assert!(matches!(err("$that"), Unsupported { position: 1, .. }));
    assert!(matches!(
        err("x.matches('[')"),
        InvalidRegex { position: 11, .. }
    ));
    assert!(matches!(
        err("x as 5"),
        InvalidTypeSpecifier { position: 6 }
    ));
    assert!(matches!(
        err("x.ofType(1)"),
        InvalidTypeSpecifier { position: 10 }
    ));
    assert!(matches!(err("x.ofType(a.b)"), InvalidTypeSpecifier { .. }));
    assert!(matches!(
        err("x.memberOf('http://vs')"),
        UnsupportedFunction { position: 3, .. }
    ));
    assert!(matches!(err("@20"), InvalidLiteral { position: 1, .. }));
    assert!(matches!(err("@2020-1"), InvalidLiteral { .. }));
    assert!(matches!(err("@T1"), InvalidLiteral { .. }));
    assert!(matches!(err("99999999999999999999"), InvalidLiteral { .. }));
    assert!(matches!(err("and"), UnexpectedToken { position: 1, .. }));
    assert!(matches!(err("{1}"), UnexpectedToken { position: 2, .. }));
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert!(matches!(err(&deep), TooDeep { limit: 64, .. }));
    assert!(matches!(err(&"-".repeat(500)), TooDeep { .. }));
    // Messages carry the position and what was expected.
    assert_eq!(
        err("Patient..name").to_string(),
        "unexpected '.' at position 9, expected a member or function name after '.'"
    );
}

#[test]
fn long_flat_expressions_do_not_nest() {
    // Unions and paths of any length are kept flat, so they neither hit the nesting limit
    // nor recurse deeply when evaluated or dropped.
    let union = vec!["a.b"; 5000].join(" | ");
    let path = format!("a{}", ".b".repeat(5000));
    let sum = vec!["1"; 5000].join(" + ");
    let r = json!({"resourceType": "Basic"});
    for src in [union, path] {
        assert!(
            Expression::parse(&src)
                .unwrap()
                .evaluate(&r)
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        Expression::parse(&sum).unwrap().evaluate(&r).unwrap(),
        vec![Item::Integer(5000)]
    );
}

#[test]
fn maximal_nesting_evaluates_within_a_test_thread_stack() {
    let r = json!({"resourceType": "Basic", "a": [1, 2]});
    let src = format!("{}a.where($this > 1){}", "(".repeat(60), ")".repeat(60));
    assert_eq!(
        Expression::parse(&src).unwrap().evaluate(&r).unwrap().len(),
        1
    );
    // Each level iterates over one item, so the work stays linear in the depth.
    let mut nested = String::from("%resource.a");
    for _ in 0..30 {
        nested = format!("%resource.where(({nested}).exists())");
    }
    let src = format!("({nested}).a");
    assert_eq!(
        Expression::parse(&src).unwrap().evaluate(&r).unwrap().len(),
        2
    );
}

/// A tiny deterministic generator so the garbage corpus is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'t>(&mut self, from: &[&'t str]) -> &'t str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

#[test]
fn garbage_never_panics() {
    const FRAGMENTS: &[&str] = &[
        "Patient",
        "name",
        "given",
        ".",
        ".",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "'",
        "'x'",
        "`",
        "\\",
        "\\u",
        "@",
        "@2020",
        "@T",
        "-",
        "+",
        "*",
        "/",
        "|",
        "&",
        "=",
        "!=",
        "~",
        "<",
        ">=",
        "and",
        "or",
        "xor",
        "implies",
        "is",
        "as",
        "in",
        "contains",
        "div",
        "mod",
        "where(",
        "select(",
        "exists(",
        "ofType(",
        "as(",
        "resolve()",
        "first()",
        "iif(",
        "substring(",
        "matches(",
        "replaceMatches(",
        "'[a-",
        "$this",
        "$index",
        "$total",
        "%resource",
        "%`vs-x`",
        "%",
        "1",
        "0",
        "-1",
        "1.5",
        "99999999999999999999",
        ",",
        " ",
        "\n",
        "/*",
        "*/",
        "//",
        "é",
        "😀",
        "\u{0}",
        "true",
        "false",
        "value",
        "Quantity",
        "FHIR.",
        "System.",
        "descendants()",
        "repeat(",
        "aggregate(",
        "extension(",
        "toInteger()",
        "skip(",
        "take(",
        "children()",
    ];
    let resource = json!({
        "resourceType": "Patient", "id": "p",
        "name": [{"given": ["a", "b"], "family": "c"}, {"given": ["d"]}],
        "valueQuantity": {"value": 1.5}, "birthDate": "2000-01-01",
        "contained": [{"resourceType": "Patient", "id": "x"}],
        "link": [{"other": {"reference": "#x"}}, {"other": {"reference": "Patient/1"}}]
    });
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for i in 0..3000 {
        let mut src = String::new();
        let len = 1 + rng.next() % 12;
        for _ in 0..len {
            if i % 3 == 0 {
                // Raw bytes-as-chars exercise the lexer's handling of anything at all.
                src.push(char::from_u32((rng.next() % 0x300) as u32).unwrap_or('?'));
            } else {
                src.push_str(rng.pick(FRAGMENTS));
            }
        }
        if let Ok(expr) = Expression::parse(&src) {
            parsed += 1;
            let _ = expr.evaluate(&resource);
            let _ = expr.evaluate_on(&resource, Item::String("s".into()));
        }
    }
    assert!(
        parsed > 100,
        "the corpus should also contain valid expressions, got {parsed}"
    );
}

#[test]
fn quantity_literals_take_a_ucum_unit_or_a_calendar_keyword() {
    let q = |value: f64, unit: &'static str| Item::Quantity {
        value,
        unit: unit.into(),
    };
    assert_eq!(eval_str("5 'mg'"), vec![q(5.0, "mg")]);
    assert_eq!(eval_str("1.5 days"), vec![q(1.5, "day")]);
    assert_eq!(eval_str("-(2 week)"), vec![q(-2.0, "week")]);
    // A keyword that is not a calendar unit leaves the number alone.
    assert_eq!(eval_str("5 mod 2"), vec![Item::Integer(1)]);
    assert!(matches!(
        err("5 'mg' 'g'"),
        ParseError::UnexpectedToken { position: 8, .. }
    ));
}
