//! FHIRPath (N1, the version FHIR R4 uses) over borrowed `serde_json::Value` resources.
//!
//! The search indexer evaluates every SearchParameter expression against every resource it
//! writes, so navigation never clones the JSON tree: a result item is either a reference
//! into the input ([`Item::Node`]) or a small system value computed along the way.
//! Engines that first convert the resource into their own model spend most of their time
//! copying; this one spends it walking maps.
//!
//! ```
//! use hds_fhirpath::{Expression, Item};
//! let patient = serde_json::json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}]});
//! let expr = Expression::parse("Patient.name.family").unwrap();
//! let out = expr.evaluate(&patient).unwrap();
//! assert_eq!(out[0].as_str(), Some("Chalmers"));
//! ```
//!
//! Left out, and rejected at parse time with a message naming them rather than silently
//! evaluated to something else: terminology functions (`memberOf`, `subsumes`), and the
//! FHIR helpers that need StructureDefinitions (`conformsTo`, `elementDefinition`, `slice`,
//! ...). Quantities convert by UCUM (`ucum-units`, see `quantity.rs`), and
//! multiplying or dividing them is not implemented.

mod ast;
mod convert;
mod eval;
mod functions;
mod lexer;
mod ops;
mod parser;
mod quantity;
mod sets;
mod temporal;
mod types;

#[cfg(test)]
mod tests_eval;
#[cfg(test)]
mod tests_parser;

use std::borrow::Cow;

use serde_json::Value;

pub use types::{COMPLEX_TYPES, PRIMITIVE_TYPES, RESOURCE_TYPES};

/// A parsed FHIRPath expression; parse once, evaluate many times (it is `Send + Sync`).
#[derive(Debug)]
pub struct Expression {
    root: ast::Expr,
    source: Box<str>,
}

impl Expression {
    pub fn parse(src: &str) -> Result<Expression, ParseError> {
        let root = parser::parse(src)?;
        Ok(Expression {
            root,
            source: src.into(),
        })
    }

    /// The text this expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against a resource (the root; `%resource`/`%context` = root too).
    pub fn evaluate<'a>(&self, resource: &'a Value) -> Result<Vec<Item<'a>>, EvalError> {
        let root = Item::root(resource);
        eval::Evaluator::new(resource, root.clone()).run(&self.root, root)
    }

    /// Evaluates with `node` as the focus (`$this`, `%context`) but `resource` as
    /// `%resource`; composite search parameter components are such relative expressions
    /// (`code`, `value.as(Quantity)`).
    pub fn evaluate_on<'a>(
        &self,
        resource: &'a Value,
        node: Item<'a>,
    ) -> Result<Vec<Item<'a>>, EvalError> {
        eval::Evaluator::new(resource, node.clone()).run(&self.root, node)
    }
}

impl std::fmt::Display for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// One item of a FHIRPath collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    /// A node of the input JSON, with its FHIR type name when known: from a choice
    /// element's suffix (`valueQuantity` -> "Quantity", `onsetDateTime` -> "dateTime"),
    /// from `resourceType` for resources, or None when the JSON alone cannot tell.
    Node {
        value: &'a Value,
        fhir_type: Option<Cow<'a, str>>,
    },
    Boolean(bool),
    String(Cow<'a, str>),
    Integer(i64),
    Decimal(f64),
    /// A date literal or computed date (`2020-01-01`, partial precision allowed).
    Date(Cow<'a, str>),
    /// A dateTime literal or computed dateTime, without the leading `@`.
    DateTime(Cow<'a, str>),
    /// A time literal, without the leading `@T` (`10:00:00`).
    Time(Cow<'a, str>),
    /// What `resolve()` yields for a reference that points outside the resource: the type
    /// and id parsed from `reference` ("Patient/123", "http://x/fhir/Patient/123",
    /// "Patient/123/_history/2"). References to contained resources (`#id`) and to
    /// Bundle entries (`fullUrl`) resolve to the embedded resource as a [`Item::Node`]
    /// instead; references that cannot be parsed resolve to nothing.
    Resolved {
        resource_type: Cow<'a, str>,
        id: Cow<'a, str>,
    },
    /// A quantity literal or computed quantity (`4 'mg'`, `3 days`): the unit is a UCUM
    /// code or a singular calendar keyword (`day`). Quantity elements of the resource
    /// stay [`Item::Node`]s.
    Quantity {
        value: f64,
        unit: Cow<'a, str>,
    },
}

impl<'a> Item<'a> {
    /// A JSON node, typed by its `resourceType` when it is a resource.
    pub fn node(value: &'a Value) -> Item<'a> {
        Item::root(value)
    }

    fn root(value: &'a Value) -> Item<'a> {
        Item::Node {
            value,
            fhir_type: types::resource_type_of(value).map(Cow::Borrowed),
        }
    }

    /// The JSON node, for [`Item::Node`].
    pub fn as_node(&self) -> Option<&'a Value> {
        match self {
            Item::Node { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The string content of a JSON string node or a string/date/time value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::Node {
                value: Value::String(s),
                ..
            } => Some(s),
            Item::String(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Some(s),
            _ => None,
        }
    }

    /// The FHIR type name when known (`Quantity`, `dateTime`, `Patient`), or the FHIRPath
    /// system type (`Boolean`, `String`, ...) for computed values.
    pub fn type_name(&self) -> Option<&str> {
        match self {
            Item::Node { fhir_type, .. } => fhir_type.as_deref(),
            Item::Boolean(_) => Some("Boolean"),
            Item::String(_) => Some("String"),
            Item::Integer(_) => Some("Integer"),
            Item::Decimal(_) => Some("Decimal"),
            Item::Date(_) => Some("Date"),
            Item::DateTime(_) => Some("DateTime"),
            Item::Time(_) => Some("Time"),
            Item::Resolved { resource_type, .. } => Some(resource_type),
            Item::Quantity { .. } => Some("Quantity"),
        }
    }

    /// Detaches the item from the resource's lifetime (clones only what is borrowed).
    pub fn into_owned(self) -> OwnedItem {
        match self {
            Item::Node { value, fhir_type } => OwnedItem::Node {
                value: value.clone(),
                fhir_type: fhir_type.map(Cow::into_owned),
            },
            Item::Boolean(b) => OwnedItem::Boolean(b),
            Item::String(s) => OwnedItem::String(s.into_owned()),
            Item::Integer(i) => OwnedItem::Integer(i),
            Item::Decimal(d) => OwnedItem::Decimal(d),
            Item::Date(s) => OwnedItem::Date(s.into_owned()),
            Item::DateTime(s) => OwnedItem::DateTime(s.into_owned()),
            Item::Time(s) => OwnedItem::Time(s.into_owned()),
            Item::Resolved { resource_type, id } => OwnedItem::Resolved {
                resource_type: resource_type.into_owned(),
                id: id.into_owned(),
            },
            Item::Quantity { value, unit } => OwnedItem::Quantity {
                value,
                unit: unit.into_owned(),
            },
        }
    }
}

/// An [`Item`] that owns its data, for keeping results past the resource's lifetime.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedItem {
    Node {
        value: Value,
        fhir_type: Option<String>,
    },
    Boolean(bool),
    String(String),
    Integer(i64),
    Decimal(f64),
    Date(String),
    DateTime(String),
    Time(String),
    Resolved {
        resource_type: String,
        id: String,
    },
    Quantity {
        value: f64,
        unit: String,
    },
}

/// Why an expression could not be parsed. `position` is the 1-based character column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unexpected character '{found}' at position {position}")]
    UnexpectedChar { position: usize, found: char },
    #[error("unterminated {what} starting at position {position}")]
    Unterminated { position: usize, what: &'static str },
    #[error("invalid escape sequence '{sequence}' at position {position}")]
    InvalidEscape { position: usize, sequence: String },
    #[error("invalid {what} literal '{text}' at position {position}: {reason}")]
    InvalidLiteral {
        position: usize,
        what: &'static str,
        text: String,
        reason: String,
    },
    #[error("unexpected {found} at position {position}, expected {expected}")]
    UnexpectedToken {
        position: usize,
        found: String,
        expected: &'static str,
    },
    #[error("unexpected end of expression, expected {expected}")]
    UnexpectedEnd { expected: &'static str },
    #[error("unknown function '{name}' at position {position}")]
    UnknownFunction { position: usize, name: String },
    #[error("function '{name}' is not supported by this engine (position {position}): {reason}")]
    UnsupportedFunction {
        position: usize,
        name: String,
        reason: &'static str,
    },
    #[error("function '{name}' at position {position} takes {expected} argument(s), got {found}")]
    WrongArgumentCount {
        position: usize,
        name: String,
        expected: &'static str,
        found: usize,
    },
    #[error("expected a type name such as Quantity or FHIR.Patient at position {position}")]
    InvalidTypeSpecifier { position: usize },
    #[error(
        "unknown environment variable '%{name}' at position {position} (known: %resource, \
         %rootResource, %context, %ucum, %sct, %loinc, %`vs-...`, %`ext-...`)"
    )]
    UnknownVariable { position: usize, name: String },
    #[error("invalid regular expression at position {position}: {message}")]
    InvalidRegex { position: usize, message: String },
    #[error("expression nests deeper than {limit} levels at position {position}")]
    TooDeep { position: usize, limit: usize },
    #[error("'{found}' at position {position} is not supported: {reason}")]
    Unsupported {
        position: usize,
        found: String,
        reason: &'static str,
    },
}

/// Why an evaluation failed. These are errors in the expression given this input (for
/// example a function that needs one item receiving several), never internal faults.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("{operation} expects at most one item but got {count}")]
    NotSingleton {
        operation: &'static str,
        count: usize,
    },
    #[error("{operation} cannot be applied to {left} and {right}")]
    TypeMismatch {
        operation: &'static str,
        left: &'static str,
        right: &'static str,
    },
    #[error("{operation} expects {expected} but got {found}")]
    WrongType {
        operation: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("invalid regular expression '{pattern}': {message}")]
    InvalidRegex { pattern: String, message: String },
    #[error("$total is only defined inside aggregate()")]
    TotalOutsideAggregate,
    #[error("{operation} produced more than {limit} items; the expression does not terminate")]
    TooManyItems {
        operation: &'static str,
        limit: usize,
    },
}
