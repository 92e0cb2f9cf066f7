//! A FHIRPath *locator*: the subset of FHIRPath that patch clients send, evaluated to
//! locations inside a `serde_json::Value` rather than to values. A patch has to know
//! *where* a node lives (object key, array index, the `_name` sibling holding its primitive
//! extensions, the concrete `value[x]` key of a choice element) to insert, remove or rename
//! it, and no FHIRPath crate exposes that for plain JSON, so this small evaluator exists.
//! Unsupported syntax is rejected at parse time with a message naming it, so a patch never
//! silently matches less than the client meant.

use serde_json::Value;

/// One hop from a JSON value to a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathStep {
    /// A leading type name (`Patient`): keeps the focus only if it is that resource type.
    Type(String),
    /// `%resource` / `%rootResource`: restarts at the resource being patched.
    Resource,
    Child(String),
    Index(usize),
    First,
    Last,
    Where(Box<Criteria>),
    OfType(String),
    /// `extension('url')`, shorthand for `extension.where(url = 'url')`.
    Extension(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Criteria {
    Or(Vec<Criteria>),
    And(Vec<Criteria>),
    Compare {
        left: Operand,
        equal: bool,
        right: Operand,
    },
    /// A bare boolean path such as `where(active)`.
    Truthy(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
}

impl Path {
    /// Splits `X.name` into (`X`, `name`), which insert and move need because their path
    /// designates a list that may not exist yet and so cannot be found by evaluation.
    pub fn split_last_child(&self) -> Option<(Path, &str)> {
        match self.steps.last() {
            Some(PathStep::Child(name)) => Some((
                Path {
                    steps: self.steps[..self.steps.len() - 1].to_vec(),
                },
                name.as_str(),
            )),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `quoted` is true for backtick-delimited names, which are never keywords.
    Ident {
        name: String,
        quoted: bool,
    },
    Special(String),
    Str(String),
    Num(String),
    Date(String),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Eq,
    Ne,
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '.' => {
                toks.push(Tok::Dot);
                i += 1;
            }
            '[' => {
                toks.push(Tok::LBracket);
                i += 1;
            }
            ']' => {
                toks.push(Tok::RBracket);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            '=' => {
                toks.push(Tok::Eq);
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Ne);
                i += 2;
            }
            '\'' => {
                let (s, next) = lex_string(&chars, i + 1, '\'')?;
                toks.push(Tok::Str(s));
                i = next;
            }
            '`' => {
                let (s, next) = lex_string(&chars, i + 1, '`')?;
                toks.push(Tok::Ident {
                    name: s,
                    quoted: true,
                });
                i = next;
            }
            '$' | '%' => {
                let start = i;
                i += 1;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                toks.push(Tok::Special(chars[start..i].iter().collect()));
            }
            '@' => {
                let start = i + 1;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | ':' | '+'))
                {
                    i += 1;
                }
                // Fractional seconds: a '.' followed by a digit belongs to the literal.
                if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < chars.len()
                        && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | ':' | '+'))
                    {
                        i += 1;
                    }
                }
                toks.push(Tok::Date(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                toks.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                toks.push(Tok::Ident {
                    name: chars[start..i].iter().collect(),
                    quoted: false,
                });
            }
            other => return Err(format!("unsupported character '{other}' in FHIRPath")),
        }
    }
    Ok(toks)
}

fn lex_string(chars: &[char], mut i: usize, delim: char) -> Result<(String, usize), String> {
    let mut out = String::new();
    while i < chars.len() {
        match chars[i] {
            c if c == delim => return Ok((out, i + 1)),
            '\\' => {
                let esc = *chars
                    .get(i + 1)
                    .ok_or("unterminated escape in string literal")?;
                match esc {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String =
                            chars.get(i + 2..i + 6).unwrap_or_default().iter().collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or("invalid \\u escape in string literal")?;
                        out.push(code);
                        i += 4;
                    }
                    other => out.push(other),
                }
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated string literal".into())
}

// ---------------------------------------------------------------------------------------
// Parser

pub(crate) fn parse(src: &str) -> Result<Path, String> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err("empty FHIRPath expression".into());
    }
    let mut p = Parser { toks, pos: 0 };
    let path = p.path(true)?;
    if let Some(t) = p.peek() {
        return Err(format!("unsupported FHIRPath syntax at {}", describe(t)));
    }
    Ok(path)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident { name, .. } => format!("'{name}'"),
        Tok::Special(s) => format!("'{s}'"),
        Tok::Str(s) => format!("'{s}' (string)"),
        Tok::Num(n) | Tok::Date(n) => format!("'{n}'"),
        Tok::Dot => "'.'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Eq => "'='".into(),
        Tok::Ne => "'!='".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(format!(
                "expected {} but found {}",
                describe(&want),
                describe(&t)
            )),
            None => Err(format!("expected {} at end of expression", describe(&want))),
        }
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident { name, quoted: false }) if name == kw)
    }

    /// `top` is false inside `where(...)`, where the path is relative to the focus.
    fn path(&mut self, top: bool) -> Result<Path, String> {
        let mut steps = Vec::new();
        match self.next() {
            Some(Tok::Ident { name, quoted }) => {
                if self.peek() == Some(&Tok::LParen) {
                    // A function with an implicit focus, e.g. `where(...)` at the start.
                    steps.push(self.function(&name)?);
                } else if !quoted && name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    steps.push(PathStep::Type(name));
                } else {
                    steps.push(PathStep::Child(name));
                }
            }
            Some(Tok::Special(s)) if s == "$this" => {}
            Some(Tok::Special(s)) if s == "%resource" || s == "%rootResource" => {
                steps.push(PathStep::Resource);
            }
            Some(t) => {
                let what = if top { "path" } else { "where() operand" };
                return Err(format!("unsupported start of {what}: {}", describe(&t)));
            }
            None => return Err("expression ends unexpectedly".into()),
        }
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    match self.next() {
                        Some(Tok::Ident { name, .. }) => {
                            if self.peek() == Some(&Tok::LParen) {
                                steps.push(self.function(&name)?);
                            } else {
                                steps.push(PathStep::Child(name));
                            }
                        }
                        Some(t) => {
                            return Err(format!(
                                "expected a name after '.', found {}",
                                describe(&t)
                            ));
                        }
                        None => return Err("expression ends after '.'".into()),
                    }
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    let idx = match self.next() {
                        Some(Tok::Num(n)) => n.parse::<usize>().map_err(|_| {
                            format!("indexer must be a non-negative integer, found '{n}'")
                        })?,
                        Some(t) => return Err(format!("unsupported indexer {}", describe(&t))),
                        None => return Err("expression ends inside '['".into()),
                    };
                    self.expect(Tok::RBracket)?;
                    steps.push(PathStep::Index(idx));
                }
                _ => break,
            }
        }
        Ok(Path { steps })
    }

    fn function(&mut self, name: &str) -> Result<PathStep, String> {
        self.expect(Tok::LParen)?;
        let step = match name {
            "first" => PathStep::First,
            "last" => PathStep::Last,
            "where" => PathStep::Where(Box::new(self.or()?)),
            "ofType" => {
                let mut ty = match self.next() {
                    Some(Tok::Ident { name, .. }) => name,
                    _ => return Err("ofType() needs a type name".into()),
                };
                // Namespaced names (`FHIR.Quantity`, `System.String`): keep the last part.
                while self.peek() == Some(&Tok::Dot) {
                    self.pos += 1;
                    match self.next() {
                        Some(Tok::Ident { name, .. }) => ty = name,
                        _ => return Err("ofType() needs a type name".into()),
                    }
                }
                PathStep::OfType(ty)
            }
            "extension" => match self.next() {
                Some(Tok::Str(url)) => PathStep::Extension(url),
                _ => return Err("extension() needs a string url argument".into()),
            },
            other => return Err(format!("unsupported FHIRPath function '{other}()'")),
        };
        self.expect(Tok::RParen)?;
        Ok(step)
    }

    fn or(&mut self) -> Result<Criteria, String> {
        let mut items = vec![self.and()?];
        while self.is_keyword("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Criteria::Or(items)
        })
    }

    fn and(&mut self) -> Result<Criteria, String> {
        let mut items = vec![self.comparison()?];
        while self.is_keyword("and") {
            self.pos += 1;
            items.push(self.comparison()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Criteria::And(items)
        })
    }

    fn comparison(&mut self) -> Result<Criteria, String> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        let left = self.operand()?;
        let equal = match self.peek() {
            Some(Tok::Eq) => true,
            Some(Tok::Ne) => false,
            _ => {
                return match left {
                    Operand::Path(p) => Ok(Criteria::Truthy(p)),
                    Operand::Literal(_) => Err("a literal alone is not a where() criterion".into()),
                };
            }
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Criteria::Compare { left, equal, right })
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let lit = match self.peek() {
            Some(Tok::Str(s)) | Some(Tok::Date(s)) => Some(Value::String(s.clone())),
            Some(Tok::Num(n)) => Some(Value::Number(
                serde_json::from_str(n).map_err(|_| format!("invalid number '{n}'"))?,
            )),
            Some(Tok::Ident {
                name,
                quoted: false,
            }) if name == "true" || name == "false" => Some(Value::Bool(name == "true")),
            _ => None,
        };
        match lit {
            Some(v) => {
                self.pos += 1;
                Ok(Operand::Literal(v))
            }
            None => Ok(Operand::Path(self.path(false)?)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// A located node: where it is, what it holds, and the element path (`Patient.name`,
/// indexes dropped, restarting at each nested resource's type) used for schema questions.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub loc: Vec<Step>,
    pub value: &'a Value,
    pub elem_path: String,
    /// For a choice element reached through its base name, the type suffix of the JSON key
    /// (`Quantity` for `valueQuantity`).
    pub choice_type: Option<String>,
}

pub(crate) fn root_node(root: &Value) -> Node<'_> {
    Node {
        loc: Vec::new(),
        value: root,
        elem_path: resource_type(root).unwrap_or_default().to_string(),
        choice_type: None,
    }
}

fn resource_type(v: &Value) -> Option<&str> {
    v.get("resourceType").and_then(Value::as_str)
}

pub(crate) fn evaluate<'a>(path: &Path, root: &'a Value) -> Result<Vec<Node<'a>>, String> {
    eval_from(path, vec![root_node(root)], root)
}

fn eval_from<'a>(
    path: &Path,
    mut focus: Vec<Node<'a>>,
    root: &'a Value,
) -> Result<Vec<Node<'a>>, String> {
    for step in &path.steps {
        focus = match step {
            PathStep::Type(name) => focus
                .into_iter()
                .filter(|n| resource_type(n.value) == Some(name.as_str()))
                .collect(),
            PathStep::Resource => vec![root_node(root)],
            PathStep::Child(name) => focus.iter().flat_map(|n| children(n, name)).collect(),
            PathStep::Index(i) => focus.into_iter().nth(*i).into_iter().collect(),
            PathStep::First => focus.into_iter().take(1).collect(),
            PathStep::Last => focus.into_iter().last().into_iter().collect(),
            PathStep::Where(criteria) => {
                let mut kept = Vec::new();
                for n in focus {
                    if matches(criteria, &n, root)? {
                        kept.push(n);
                    }
                }
                kept
            }
            PathStep::OfType(ty) => {
                let mut kept = Vec::new();
                for n in focus {
                    let is = if let Some(rt) = resource_type(n.value) {
                        rt == ty
                    } else if let Some(suffix) = &n.choice_type {
                        suffix.eq_ignore_ascii_case(ty)
                    } else {
                        return Err(format!(
                            "ofType({ty}) is only supported on choice elements and resources, not on '{}'",
                            n.elem_path
                        ));
                    };
                    if is {
                        kept.push(n);
                    }
                }
                kept
            }
            PathStep::Extension(url) => focus
                .iter()
                .flat_map(|n| children(n, "extension"))
                .filter(|n| n.value.get("url").and_then(Value::as_str) == Some(url.as_str()))
                .collect(),
        };
    }
    Ok(focus)
}

/// Children named `name`; a choice element is found by its base name (`value` finds
/// `valueQuantity`) since FHIRPath names choices without the type suffix.
pub(crate) fn children<'a>(node: &Node<'a>, name: &str) -> Vec<Node<'a>> {
    let Some(obj) = node.value.as_object() else {
        return Vec::new();
    };
    let (key, value, choice_type) = match obj.get(name) {
        Some(v) => (name, v, None),
        None => {
            let found = obj.iter().find(|(k, _)| {
                k.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
            });
            match found {
                Some((k, v)) => (k.as_str(), v, Some(k[name.len()..].to_string())),
                None => return Vec::new(),
            }
        }
    };
    let child_path = if node.elem_path.is_empty() {
        key.to_string()
    } else {
        format!("{}.{key}", node.elem_path)
    };
    let make = |loc: Vec<Step>, value: &'a Value| Node {
        loc,
        value,
        elem_path: resource_type(value).map_or_else(|| child_path.clone(), str::to_string),
        choice_type: choice_type.clone(),
    };
    let mut loc = node.loc.clone();
    loc.push(Step::Key(key.to_string()));
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_null())
            .map(|(i, v)| {
                let mut item_loc = loc.clone();
                item_loc.push(Step::Index(i));
                make(item_loc, v)
            })
            .collect(),
        v => vec![make(loc, v)],
    }
}

fn matches(c: &Criteria, node: &Node<'_>, root: &Value) -> Result<bool, String> {
    Ok(match c {
        Criteria::Or(items) => {
            for item in items {
                if matches(item, node, root)? {
                    return Ok(true);
                }
            }
            false
        }
        Criteria::And(items) => {
            for item in items {
                if !matches(item, node, root)? {
                    return Ok(false);
                }
            }
            true
        }
        Criteria::Truthy(p) => {
            let found = eval_from(p, vec![node.clone()], root)?;
            found.len() == 1 && found[0].value == &Value::Bool(true)
        }
        Criteria::Compare { left, equal, right } => {
            let l = operand_values(left, node, root)?;
            let r = operand_values(right, node, root)?;
            // FHIRPath comparison with an empty side yields empty, which where() treats as false.
            if l.is_empty() || r.is_empty() {
                return Ok(false);
            }
            let any_equal = l.iter().any(|a| r.iter().any(|b| json_equal(a, b)));
            any_equal == *equal
        }
    })
}

fn operand_values(op: &Operand, node: &Node<'_>, root: &Value) -> Result<Vec<Value>, String> {
    match op {
        Operand::Literal(v) => Ok(vec![v.clone()]),
        Operand::Path(p) => Ok(eval_from(p, vec![node.clone()], root)?
            .into_iter()
            .map(|n| n.value.clone())
            .collect()),
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn locs(expr: &str, v: &Value) -> Vec<Vec<Step>> {
        evaluate(&parse(expr).unwrap(), v)
            .unwrap()
            .into_iter()
            .map(|n| n.loc)
            .collect()
    }

    fn k(s: &str) -> Step {
        Step::Key(s.into())
    }

    #[test]
    fn navigates_where_first_last_and_index() {
        let p = json!({"resourceType": "Patient", "name": [
            {"use": "official", "given": ["A", "B"]},
            {"use": "usual", "given": ["C"]}
        ]});
        assert_eq!(
            locs("Patient.name.where(use='official').given", &p),
            vec![
                vec![k("name"), Step::Index(0), k("given"), Step::Index(0)],
                vec![k("name"), Step::Index(0), k("given"), Step::Index(1)]
            ]
        );
        assert_eq!(
            locs("Patient.name.given.last()", &p),
            vec![vec![k("name"), Step::Index(1), k("given"), Step::Index(0)]]
        );
        assert_eq!(
            locs("Patient.name[1].use", &p),
            vec![vec![k("name"), Step::Index(1), k("use")]]
        );
        assert_eq!(
            locs("name.first().use", &p),
            vec![vec![k("name"), Step::Index(0), k("use")]]
        );
        assert!(locs("Observation.name", &p).is_empty());
        assert_eq!(locs("Patient.name.given.where($this = 'C')", &p).len(), 1);
    }

    #[test]
    fn choice_elements_and_of_type() {
        let o = json!({"resourceType": "Observation", "valueQuantity": {"value": 5}});
        assert_eq!(
            locs("Observation.value", &o),
            vec![vec![k("valueQuantity")]]
        );
        assert_eq!(
            locs("Observation.value.ofType(Quantity).value", &o),
            vec![vec![k("valueQuantity"), k("value")]]
        );
        assert!(locs("Observation.value.ofType(string)", &o).is_empty());
        assert_eq!(locs("Observation.value.where(value = 5.0)", &o).len(), 1);
    }

    #[test]
    fn rejects_unsupported_syntax() {
        for bad in [
            "Patient.name | Patient.address",
            "Patient.name.exists()",
            "Patient..name",
            "Patient.name[",
            "Patient.name.where(use > 'a')",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
        let err = parse("Patient.name.select(given)").unwrap_err();
        assert!(err.contains("select"), "{err}");
    }
}
