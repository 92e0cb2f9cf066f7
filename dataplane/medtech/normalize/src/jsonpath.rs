//! Azure's JSONPath dialect (Newtonsoft's `SelectToken`), run on an RFC 9535 engine.
//!
//! Templates written for Azure use Newtonsoft's syntax, which RFC 9535 rejects or reads
//! differently: `@heartRate` without a dot, dotted names with hyphens
//! (`$.SystemProperties.iothub-connection-device-id`), `===`, and above all `$..[?(f)]`, which
//! in Newtonsoft tests the node itself as well as its descendants (IoT templates match the
//! envelope root that way). Rather than write and maintain a second JSONPath engine, each
//! expression is translated once, at parse time, into RFC 9535 text for `serde_json_path`;
//! the only thing RFC 9535 cannot say — "this node itself, if it passes the filter" — is
//! emulated by splitting the path at such scan filters into stages (see [`Stage`]).
//!
//! Known differences that remain: Newtonsoft compares loosely (`@.x == '5'` matches the
//! number 5; RFC 9535 does not), a non-scan filter on an object tests its member values (as
//! RFC 9535 does; Newtonsoft matches nothing there), `$` inside a filter of a later stage
//! means that stage's node, and regex matches (`=~`) and script expressions are refused.

use std::collections::HashMap;

use serde_json::Value;
use serde_json_path::JsonPath;

/// One step of a translated path. A path `P ..[?(f)] R` becomes `Path(P)`, `Scan(f)`,
/// `Path(R)`, each applied to every node the step before produced.
#[derive(Debug)]
enum Stage {
    /// An RFC 9535 query relative to the current node (as `$`).
    Path(JsonPath),
    /// Newtonsoft's `..[?(f)]`: the node itself if `self_test` (`$[?f]`, run on a one-element
    /// array holding the node) selects it, then the RFC descendants (`$..[?f]`), all in
    /// document order.
    Scan {
        self_test: JsonPath,
        descendants: JsonPath,
    },
}

/// A compiled Newtonsoft-style JSONPath expression.
#[derive(Debug)]
pub(crate) struct NewtonsoftPath {
    stages: Vec<Stage>,
}

impl NewtonsoftPath {
    pub(crate) fn parse(expression: &str) -> Result<Self, String> {
        let parts = translate(expression)?;
        let compile = |text: &str| {
            JsonPath::parse(text)
                .map_err(|e| format!("invalid JSONPath {expression:?} (read as {text:?}): {e}"))
        };
        let mut stages = Vec::with_capacity(parts.len());
        for part in parts {
            stages.push(match part {
                Part::Path(text) => Stage::Path(compile(&text)?),
                Part::Scan(filter) => Stage::Scan {
                    self_test: compile(&format!("$[?({filter})]"))?,
                    descendants: compile(&format!("$..[?({filter})]"))?,
                },
            });
        }
        Ok(Self { stages })
    }

    /// The selected nodes, in Newtonsoft's order. `wrapped_root`, when given, must be
    /// `[root]`: it saves cloning the root for a leading scan filter.
    pub(crate) fn select<'v>(
        &self,
        root: &'v Value,
        wrapped_root: Option<&Value>,
    ) -> Vec<&'v Value> {
        let mut nodes = vec![root];
        for stage in &self.stages {
            let mut next = Vec::new();
            for &node in &nodes {
                match stage {
                    Stage::Path(path) => next.extend(path.query(node).all()),
                    Stage::Scan {
                        self_test,
                        descendants,
                    } => {
                        let itself = match wrapped_root {
                            Some(wrapped) if std::ptr::eq(node, root) => {
                                !self_test.query(wrapped).is_empty()
                            }
                            _ => !self_test
                                .query(&Value::Array(vec![node.clone()]))
                                .is_empty(),
                        };
                        if itself {
                            next.push(node);
                        }
                        let mut found = descendants.query(node).all();
                        in_document_order(node, &mut found);
                        next.extend(found);
                    }
                }
            }
            nodes = next;
        }
        nodes
    }

    /// Whether evaluation would start by testing the root itself (so a `[root]` wrapper helps).
    pub(crate) fn scans_root(&self) -> bool {
        matches!(self.stages.first(), Some(Stage::Scan { .. }))
    }
}

/// RFC 9535 lists descendant matches node by node (children of the root, then of its first
/// child, ...); Newtonsoft walks the tree depth-first. Sort by pre-order position.
fn in_document_order(top: &Value, nodes: &mut [&Value]) {
    if nodes.len() < 2 {
        return;
    }
    let mut position = HashMap::new();
    let mut stack = vec![top];
    while let Some(node) = stack.pop() {
        position.insert(node as *const Value, position.len());
        match node {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => stack.extend(map.values().rev()),
            _ => {}
        }
    }
    nodes.sort_by_key(|n| {
        position
            .get(&(*n as *const Value))
            .copied()
            .unwrap_or(usize::MAX)
    });
}

#[derive(Debug, PartialEq)]
enum Part {
    /// RFC 9535 text of a path, starting with `$`.
    Path(String),
    /// RFC 9535 text of a filter's logical expression.
    Scan(String),
}

/// Splits a Newtonsoft path into RFC 9535 paths and scan filters.
fn translate(expression: &str) -> Result<Vec<Part>, String> {
    let mut t = Translator {
        chars: expression.chars().collect(),
        pos: 0,
    };
    t.skip_ws();
    let mut current = String::from("$");
    match t.peek() {
        Some('$') => t.pos += 1,
        Some('[') | None => {}
        // Newtonsoft accepts a path without `$` (`Body.heartRate`).
        Some(_) => t.name(&mut current, false, false)?,
    }
    let mut parts = Vec::new();
    loop {
        match (t.peek(), t.peek_at(1)) {
            (Some('.'), Some('.')) => {
                t.pos += 2;
                if t.peek() == Some('[') {
                    t.pos += 1;
                    if let Some(filter) = t.bracket(&mut current, true, false)? {
                        if current != "$" {
                            parts.push(Part::Path(std::mem::replace(&mut current, "$".into())));
                        }
                        parts.push(Part::Scan(filter));
                    }
                } else {
                    t.name(&mut current, true, false)?;
                }
            }
            (Some('.'), _) => {
                t.pos += 1;
                if t.peek() == Some('[') {
                    t.pos += 1;
                    t.bracket(&mut current, false, false)?;
                } else {
                    t.name(&mut current, false, false)?;
                }
            }
            (Some('['), _) => {
                t.pos += 1;
                t.bracket(&mut current, false, false)?;
            }
            (None, _) => break,
            (Some(c), _) if c.is_whitespace() => {
                t.skip_ws();
                if let Some(c) = t.peek() {
                    return Err(t.unexpected(c));
                }
            }
            (Some(c), _) => return Err(t.unexpected(c)),
        }
    }
    if current != "$" || parts.is_empty() {
        parts.push(Part::Path(current));
    }
    Ok(parts)
}

struct Translator {
    chars: Vec<char>,
    pos: usize,
}

/// Characters that end a dotted name inside a filter (Newtonsoft stops at operators).
fn ends_name_in_filter(c: char) -> bool {
    matches!(c, '=' | '<' | '>' | '!' | '|' | '&' | ',' | ')')
}

fn is_rfc_shorthand(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii());
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii())
}

impl Translator {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn unexpected(&self, c: char) -> String {
        format!("unexpected {c:?} at position {}", self.pos)
    }

    /// A dotted name (or `*`), written in RFC 9535 form after `.`/`..` onto `out`.
    fn name(&mut self, out: &mut String, descendant: bool, in_filter: bool) -> Result<(), String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '.' || c == '[' || c == ']' || c == '(' || c.is_whitespace() {
                break;
            }
            if in_filter && ends_name_in_filter(c) {
                break;
            }
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if name.is_empty() {
            return Err(match self.peek() {
                Some(c) => self.unexpected(c),
                None => "path ends after '.'".to_owned(),
            });
        }
        if name == "*" || is_rfc_shorthand(&name) {
            out.push_str(if descendant { ".." } else { "." });
            out.push_str(&name);
        } else {
            out.push_str(if descendant { "..['" } else { "['" });
            for c in name.chars() {
                match c {
                    '\'' => out.push_str("\\'"),
                    '\\' => out.push_str("\\\\"),
                    c => out.push(c),
                }
            }
            out.push_str("']");
        }
        Ok(())
    }

    /// The inside of `[...]`, after the `[`. A scan filter at the top level is returned
    /// (its logical expression) instead of being written to `out`.
    fn bracket(
        &mut self,
        out: &mut String,
        descendant: bool,
        in_filter: bool,
    ) -> Result<Option<String>, String> {
        self.skip_ws();
        if self.peek() == Some('?') {
            self.pos += 1;
            self.skip_ws();
            if self.peek() != Some('(') {
                return Err(format!("expected '(' after '?' at position {}", self.pos));
            }
            self.pos += 1;
            let filter = self.filter()?;
            self.skip_ws();
            if self.peek() != Some(']') {
                return Err(format!("expected ']' at position {}", self.pos));
            }
            self.pos += 1;
            if descendant && !in_filter {
                return Ok(Some(filter));
            }
            out.push_str(if descendant { "..[?(" } else { "[?(" });
            out.push_str(&filter);
            out.push_str(")]");
            return Ok(None);
        }
        if self.peek() == Some('(') {
            return Err("script expressions ('[(...)]') are not supported".to_owned());
        }
        out.push_str(if descendant { "..[" } else { "[" });
        loop {
            match self.peek() {
                None => return Err("unclosed '['".to_owned()),
                Some(']') => {
                    self.pos += 1;
                    out.push(']');
                    return Ok(None);
                }
                Some(q @ ('\'' | '"')) => self.string(out, q)?,
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A quoted string, copied as is (RFC 9535 accepts both quotes and the same escapes).
    fn string(&mut self, out: &mut String, quote: char) -> Result<(), String> {
        out.push(quote);
        self.pos += 1;
        while let Some(c) = self.peek() {
            out.push(c);
            self.pos += 1;
            if c == '\\' {
                if let Some(next) = self.peek() {
                    out.push(next);
                    self.pos += 1;
                }
            } else if c == quote {
                return Ok(());
            }
        }
        Err("unclosed string".to_owned())
    }

    /// A filter's logical expression, after `?(`, up to and including the matching `)`.
    fn filter(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut depth = 0usize;
        loop {
            let Some(c) = self.peek() else {
                return Err("unclosed filter '?('".to_owned());
            };
            match c {
                ')' if depth == 0 => {
                    self.pos += 1;
                    return Ok(out);
                }
                ')' => {
                    depth -= 1;
                    out.push(c);
                    self.pos += 1;
                }
                '(' => {
                    depth += 1;
                    out.push(c);
                    self.pos += 1;
                }
                '\'' | '"' => self.string(&mut out, c)?,
                '@' | '$' => {
                    self.pos += 1;
                    out.push(c);
                    self.filter_path(&mut out)?;
                }
                '=' if self.peek_at(1) == Some('~') => {
                    return Err("regular expression matches ('=~') are not supported".to_owned());
                }
                '=' | '!' if self.peek_at(1) == Some('=') && self.peek_at(2) == Some('=') => {
                    // Newtonsoft's strict (in)equality; RFC 9535 equality is already strict.
                    out.push(c);
                    out.push('=');
                    self.pos += 3;
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// The segments after a filter's `@` or `$`.
    fn filter_path(&mut self, out: &mut String) -> Result<(), String> {
        // Newtonsoft reads `@heartRate` as `@.heartRate`.
        if let Some(c) = self.peek()
            && c != '.'
            && c != '['
            && !c.is_whitespace()
            && !ends_name_in_filter(c)
        {
            self.name(out, false, true)?;
        }
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some('.'), Some('.')) => {
                    self.pos += 2;
                    if self.peek() == Some('[') {
                        self.pos += 1;
                        self.bracket(out, true, true)?;
                    } else {
                        self.name(out, true, true)?;
                    }
                }
                (Some('.'), _) => {
                    self.pos += 1;
                    if self.peek() == Some('[') {
                        self.pos += 1;
                        self.bracket(out, false, true)?;
                    } else {
                        self.name(out, false, true)?;
                    }
                }
                (Some('['), _) => {
                    self.pos += 1;
                    self.bracket(out, false, true)?;
                }
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
