//! Schema questions a patch needs answered without carrying the FHIR definitions itself.

/// Answers cardinality/choice questions about an element, given its parent's element path.
///
/// `parent_path` is the dotted path of JSON property names from the resource type with
/// indexes dropped, e.g. `Patient`, `Patient.name`, `Patient.contact.name`,
/// `Observation.valueQuantity`; inside a nested resource (contained, `Bundle.entry.resource`)
/// it restarts at that resource's type. Mapping it onto datatype definitions
/// (`Patient.name` is a `HumanName`, so `given` is `HumanName.given`) is the implementor's job.
///
/// `None` means "don't know"; the patch engine then follows the existing JSON (an array
/// stays an array) and otherwise writes a single value.
pub trait ElementInfo {
    /// Whether `name` under `parent_path` has max cardinality > 1 (is a JSON array).
    fn is_repeating(&self, parent_path: &str, name: &str) -> Option<bool>;

    /// Whether `name` under `parent_path` is a choice element (`value[x]`), whose JSON key
    /// carries the type (`valueQuantity`).
    fn is_choice(&self, _parent_path: &str, _name: &str) -> Option<bool> {
        None
    }
}

/// A schema-less guess: a built-in list of elements that repeat wherever they occur in the
/// common R4 resources and datatypes, plus a few resource-specific ones whose name is single
/// elsewhere (`Organization.name` is a string, `Patient.name` a list). Wrong answers are
/// possible for rare elements; the server should supply an `ElementInfo` from the R4
/// StructureDefinitions.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultElementInfo;

/// Names that are arrays under every parent in R4 core where they appear, or nearly so.
const ALWAYS_REPEATING: &[&str] = &[
    "extension",
    "modifierExtension",
    "contained",
    "identifier",
    "telecom",
    "given",
    "prefix",
    "suffix",
    "line",
    "coding",
    "note",
    "tag",
    "security",
    "profile",
    "parameter",
    "part",
    "entry",
    "generalPractitioner",
    "communication",
    "basedOn",
    "partOf",
    "category",
    "performer",
    "interpretation",
    "referenceRange",
    "hasMember",
    "derivedFrom",
    "component",
    "reasonCode",
    "reasonReference",
    "participant",
    "dosageInstruction",
    "qualification",
    "photo",
    "alias",
    "bodySite",
    "evidence",
    "stage",
    "contact",
    "instantiatesCanonical",
    "instantiatesUri",
];

/// `Type.element` pairs that repeat only in some resources.
const REPEATING_IN: &[(&str, &str)] = &[
    ("Patient", "name"),
    ("Patient", "address"),
    ("Patient", "link"),
    ("Practitioner", "name"),
    ("Practitioner", "address"),
    ("RelatedPerson", "name"),
    ("RelatedPerson", "address"),
    ("RelatedPerson", "relationship"),
    ("Person", "name"),
    ("Person", "address"),
    ("Person", "link"),
    ("Organization", "address"),
    ("Organization", "type"),
    ("Patient.contact", "relationship"),
    ("PractitionerRole", "code"),
    ("PractitionerRole", "specialty"),
    ("PractitionerRole", "location"),
    ("Encounter", "type"),
    ("Encounter", "diagnosis"),
    ("Encounter", "location"),
    ("Bundle", "link"),
    ("Bundle.entry", "link"),
];

/// Choice elements of the resources patched most often.
const CHOICES: &[(&str, &str)] = &[
    ("Observation", "value"),
    ("Observation", "effective"),
    ("Observation.component", "value"),
    ("Patient", "deceased"),
    ("Patient", "multipleBirth"),
    ("Condition", "onset"),
    ("Condition", "abatement"),
    ("MedicationRequest", "medication"),
    ("MedicationStatement", "medication"),
    ("MedicationStatement", "effective"),
    ("Procedure", "performed"),
    ("AllergyIntolerance", "onset"),
    ("Immunization", "occurrence"),
];

impl ElementInfo for DefaultElementInfo {
    fn is_repeating(&self, parent_path: &str, name: &str) -> Option<bool> {
        if ALWAYS_REPEATING.contains(&name) || REPEATING_IN.contains(&(parent_path, name)) {
            Some(true)
        } else {
            None
        }
    }

    fn is_choice(&self, parent_path: &str, name: &str) -> Option<bool> {
        let in_extension = name == "value"
            && (parent_path.ends_with("extension") || parent_path.ends_with("Extension"));
        if in_extension || CHOICES.contains(&(parent_path, name)) {
            Some(true)
        } else {
            None
        }
    }
}
