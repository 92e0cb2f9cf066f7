//! The R4 type names and the type tests behind `is`, `as` and `ofType`.
//!
//! Nodes only carry a type when the JSON itself tells it (a choice element's suffix or a
//! resource's `resourceType`); the engine has no StructureDefinitions. So `is` answers
//! "known to be", while `as`/`ofType` also keep an untyped node whose JSON shape fits,
//! which is what search expressions such as `(Observation.value as Quantity)` need.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::Item;

/// The R4 primitive types (spelled as in StructureDefinitions and choice suffixes after
/// lower-casing the first letter: `valueDateTime` holds a `dateTime`).
pub const PRIMITIVE_TYPES: &[&str] = &[
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "xhtml",
];

/// The R4 complex data types, plus the two Quantity profiles FHIRPath may name.
pub const COMPLEX_TYPES: &[&str] = &[
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "BackboneElement",
    "CodeableConcept",
    "Coding",
    "ContactDetail",
    "ContactPoint",
    "Contributor",
    "Count",
    "DataRequirement",
    "Distance",
    "Dosage",
    "Duration",
    "Element",
    "ElementDefinition",
    "Expression",
    "Extension",
    "HumanName",
    "Identifier",
    "MarketingStatus",
    "Meta",
    "Money",
    "MoneyQuantity",
    "Narrative",
    "ParameterDefinition",
    "Period",
    "Population",
    "ProdCharacteristic",
    "ProductShelfLife",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "RelatedArtifact",
    "SampledData",
    "Signature",
    "SimpleQuantity",
    "SubstanceAmount",
    "Timing",
    "TriggerDefinition",
    "UsageContext",
];

/// The R4 resource types, including the abstract `Resource` and `DomainResource`.
pub const RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "DomainResource",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "Resource",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

const SYSTEM_TYPES: &[&str] = &[
    "Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time", "Quantity",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Namespace {
    /// No prefix: FHIR types first, System types as a fallback.
    Any,
    Fhir,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeSpec {
    pub namespace: Namespace,
    pub name: Box<str>,
}

/// The FHIR type a choice-element suffix names (`Quantity`, `DateTime` -> `dateTime`), or
/// None when the suffix is not an R4 type, so `value` never matches `valueSet`.
pub(crate) fn choice_type(suffix: &str) -> Option<&'static str> {
    let first = *suffix.as_bytes().first()?;
    if !first.is_ascii_uppercase() {
        return None;
    }
    if let Ok(i) = COMPLEX_TYPES.binary_search(&suffix) {
        return COMPLEX_TYPES.get(i).copied();
    }
    PRIMITIVE_TYPES
        .iter()
        .find(|t| {
            t.len() == suffix.len()
                && t.as_bytes()[0] == first.to_ascii_lowercase()
                && t[1..] == suffix[1..]
        })
        .copied()
}

// The lists are sorted (a unit test checks), so membership is a binary search: type names
// are looked up for every leading identifier of every expression.
pub(crate) fn is_resource_type(name: &str) -> bool {
    RESOURCE_TYPES.binary_search(&name).is_ok()
}

pub(crate) fn is_primitive_type(name: &str) -> bool {
    PRIMITIVE_TYPES.binary_search(&name).is_ok()
}

fn is_complex_type(name: &str) -> bool {
    COMPLEX_TYPES.binary_search(&name).is_ok()
}

pub(crate) fn is_system_type(name: &str) -> bool {
    SYSTEM_TYPES.contains(&name)
}

/// The `resourceType` of a JSON object, which is how resources announce their type.
pub(crate) fn resource_type_of(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) => map.get("resourceType").and_then(Value::as_str),
        _ => None,
    }
}

/// The R4 base type, so `is Quantity` holds for an Age and `is string` for a code.
fn base_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity" => {
            "Quantity"
        }
        "Dosage" | "ElementDefinition" | "MarketingStatus" | "Population"
        | "ProdCharacteristic" | "ProductShelfLife" | "SubstanceAmount" | "Timing" => {
            "BackboneElement"
        }
        "code" | "id" | "markdown" => "string",
        "canonical" | "oid" | "url" | "uuid" => "uri",
        "positiveInt" | "unsignedInt" => "integer",
        "Resource" | "Element" => return None,
        "DomainResource" | "Binary" | "Bundle" | "Parameters" => "Resource",
        n if is_resource_type(n) => "DomainResource",
        n if is_primitive_type(n) => "Element",
        n if is_complex_type(n) => "Element",
        _ => return None,
    })
}

/// The FHIRPath System type a FHIR primitive maps to when converted.
fn system_of_primitive(name: &str) -> Option<&'static str> {
    Some(match name {
        "boolean" => "Boolean",
        "integer" | "positiveInt" | "unsignedInt" => "Integer",
        "decimal" => "Decimal",
        "date" => "Date",
        "dateTime" | "instant" => "DateTime",
        "time" => "Time",
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity"
        | "SimpleQuantity" => "Quantity",
        n if is_primitive_type(n) => "String",
        _ => return None,
    })
}

fn fhir_type_is(mut actual: &str, wanted: &str) -> bool {
    if actual == wanted {
        return true;
    }
    // Only these have subtypes; for any other name equality was the whole answer.
    let is_base = matches!(
        wanted,
        "Resource"
            | "DomainResource"
            | "Element"
            | "BackboneElement"
            | "Quantity"
            | "string"
            | "uri"
            | "integer"
    );
    if !is_base {
        return false;
    }
    // Bounded walk: the base chain of any R4 type is at most four steps long.
    for _ in 0..6 {
        if actual == wanted {
            return true;
        }
        match base_type(actual) {
            Some(b) => actual = b,
            None => return false,
        }
    }
    false
}

/// `item is spec`: true only when the item's type is known and is (a subtype of) `spec`.
pub(crate) fn is_type(item: &Item<'_>, spec: &TypeSpec) -> bool {
    let name = &*spec.name;
    match item {
        Item::Node {
            fhir_type: Some(t), ..
        }
        | Item::Resolved {
            resource_type: t, ..
        } => {
            match spec.namespace {
                Namespace::Fhir => fhir_type_is(t, name),
                Namespace::System => system_of_primitive(t) == Some(name),
                // Unprefixed names are FHIR names first; `value.as(DateTime)` as the R4
                // search parameters write it means the System type, so fall back to that.
                Namespace::Any => {
                    fhir_type_is(t, name)
                        || (is_system_type(name) && system_of_primitive(t) == Some(name))
                }
            }
        }
        // JSON `true`/`false` can only be a FHIR boolean. It is not known to be a
        // System.Boolean, though, as no node is (`Patient.active.is(Boolean)` is false).
        Item::Node {
            value: Value::Bool(_),
            fhir_type: None,
        } => spec.namespace != Namespace::System && fhir_type_is("boolean", name),
        Item::Node {
            fhir_type: None, ..
        } => false,
        _ => {
            let Some(system) = item.type_name() else {
                return false;
            };
            match spec.namespace {
                Namespace::System => system == name,
                Namespace::Fhir => false,
                Namespace::Any => system == name || system_of_primitive(name) == Some(system),
            }
        }
    }
}

/// `item as spec` / `ofType(spec)`: `is`, or for an untyped node a JSON shape that fits.
pub(crate) fn conforms(item: &Item<'_>, spec: &TypeSpec) -> bool {
    match item {
        Item::Node {
            value,
            fhir_type: None,
        } => shape_fits(value, spec),
        _ => is_type(item, spec),
    }
}

fn shape_fits(value: &Value, spec: &TypeSpec) -> bool {
    let name = &*spec.name;
    let system = match spec.namespace {
        Namespace::System => Some(name),
        Namespace::Fhir => system_of_primitive(name),
        Namespace::Any => system_of_primitive(name).or(is_system_type(name).then_some(name)),
    };
    match (system, value) {
        (Some("Boolean"), Value::Bool(_)) => true,
        (Some("Integer"), Value::Number(n)) => n.as_i64().is_some(),
        (Some("Decimal"), Value::Number(_)) => true,
        (Some("String" | "Date" | "DateTime" | "Time"), Value::String(_)) => true,
        (Some("Quantity"), Value::Object(_)) => true,
        (Some(_), _) => false,
        (None, Value::Object(map)) => {
            if spec.namespace == Namespace::System {
                return false;
            }
            match map.get("resourceType").and_then(Value::as_str) {
                Some(rt) => fhir_type_is(rt, name),
                None => is_complex_type(name),
            }
        }
        (None, _) => false,
    }
}

/// Whether a known type of `item` is `name` or derives from it (FHIR namespace only), as
/// a leading type name in a path (`Patient.name`, `Resource.id`) requires.
pub(crate) fn has_fhir_type(item: &Item<'_>, name: &str) -> bool {
    match item {
        Item::Node {
            fhir_type: Some(t), ..
        }
        | Item::Resolved {
            resource_type: t, ..
        } => fhir_type_is(t, name),
        _ => false,
    }
}

/// Whether `name` is an R4 resource or complex type name.
pub(crate) fn is_type_name(name: &str) -> bool {
    is_resource_type(name) || is_complex_type(name)
}

/// `type()` of one item: a `{namespace, name}` node, or None when the JSON does not tell
/// the type (a string may be a code, a uri, a date, ...).
pub(crate) fn type_info<'a>(item: &Item<'a>) -> Option<Item<'a>> {
    let (namespace, name) = match item {
        Item::Node {
            fhir_type: Some(t), ..
        }
        | Item::Resolved {
            resource_type: t, ..
        } => ("FHIR", &**t),
        Item::Node {
            value: Value::Bool(_),
            fhir_type: None,
        } => ("FHIR", "boolean"),
        Item::Node { .. } => return None,
        other => ("System", other.type_name()?),
    };
    // The infos are built once, on first use, so they can be borrowed like resource nodes.
    type Infos = HashMap<&'static str, Value>;
    static INFOS: OnceLock<(Infos, Infos)> = OnceLock::new();
    let (fhir, system) = INFOS.get_or_init(|| {
        let infos = |ns: &'static str, names: &mut dyn Iterator<Item = &&'static str>| {
            names
                .map(|n| (*n, json!({"namespace": ns, "name": n})))
                .collect()
        };
        let mut fhir = RESOURCE_TYPES
            .iter()
            .chain(COMPLEX_TYPES)
            .chain(PRIMITIVE_TYPES);
        (
            infos("FHIR", &mut fhir),
            infos("System", &mut SYSTEM_TYPES.iter()),
        )
    });
    let info = if namespace == "FHIR" { fhir } else { system }.get(name)?;
    Some(Item::Node {
        value: info,
        fhir_type: Some(Cow::Borrowed(
            if is_primitive_type(name) || namespace == "System" {
                "SimpleTypeInfo"
            } else {
                "ClassInfo"
            },
        )),
    })
}
