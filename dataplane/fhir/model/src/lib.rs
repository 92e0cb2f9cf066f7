//! FHIR R4 (4.0.1) structure definitions and a fast structural validator.
//!
//! The definitions are a compact extract of the official StructureDefinitions (see
//! `README.md` for how `data/r4-defs.json` is regenerated). They are embedded in the
//! binary and parsed once on first use.

mod defs;
mod links;
mod primitives;
mod validate;

use std::sync::LazyLock;

pub use defs::{Definitions, ElementShape, ValueSet};
pub use links::LinkKind;

static R4: LazyLock<Definitions> = LazyLock::new(|| {
    Definitions::from_json(include_str!("../data/r4-defs.json"))
        .expect("embedded data/r4-defs.json is valid (regenerate with gen-r4-defs)")
});

/// The FHIR R4 4.0.1 definitions, loaded on first use.
pub fn r4() -> &'static Definitions {
    &R4
}

/// One validation finding, shaped after `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    /// FHIRPath-style location, e.g. `Patient.name[0].given[1]`.
    pub expression: String,
    pub diagnostics: String,
}

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    /// The FHIR `issue-severity` code.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The subset of FHIR `issue-type` codes the validator reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueCode {
    /// Content is not a FHIR resource at all (not an object, bad or unknown `resourceType`).
    Invalid,
    /// JSON shape problems: unknown elements, wrong JSON kind, array vs. single value,
    /// empty/null values, too many repetitions, several choice forms.
    Structure,
    /// A mandatory element (min >= 1) is missing.
    Required,
    /// A primitive value violates its type's format or range.
    Value,
    /// A string exceeds the 1 MiB limit of the spec.
    TooLong,
    /// A `code` is not in the ValueSet its element is bound to with strength `required`.
    CodeInvalid,
    /// A FHIRPath invariant (`constraint`) of a profile does not hold (`hds-fhir-profile`).
    Invariant,
    /// Something a check needs is not known here, e.g. a profile's ValueSet.
    NotFound,
    /// A check could not be carried out, e.g. an invariant this FHIRPath engine cannot run.
    NotSupported,
}

impl IssueCode {
    /// The FHIR `issue-type` code.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::TooLong => "too-long",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::Invariant => "invariant",
            IssueCode::NotFound => "not-found",
            IssueCode::NotSupported => "not-supported",
        }
    }
}

impl serde::Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl serde::Serialize for IssueCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}",
            self.severity.as_str(),
            self.code.as_str(),
            self.expression,
            self.diagnostics
        )
    }
}
