//! Synthetic, Synthea-like FHIR R4 data for the search benchmark (`fhir-synth`,
//! `fhir-search-bench`).
//!
//! Everything is a pure function of `(seed, patient index)`: [`plan`] draws one patient's whole
//! record (names, dates, codes, values) from an RNG seeded by both, and [`render`] turns one
//! resource type of that plan into JSON. So the generator streams (no resource is kept after it
//! is written), the loader can order the output by type (patients first, so every reference
//! resolves), and the query runner can look at any patient's data without reading the file.
//!
//! Ids are chosen by the client and encode their owner: `p-000123` (Patient), `e-000123-02`
//! (Encounter), `o-000123-07` (Observation), `r-…` (DiagnosticReport), `c-…` (Condition),
//! `m-…` (MedicationRequest), `x-…` (Procedure). References only point at Patients, Encounters
//! and Observations of the same patient.

use std::io::Write;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Resource types in load order: every reference points to a type earlier in this list.
pub const TYPES: [&str; 7] = [
    "Patient",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Condition",
    "MedicationRequest",
    "Procedure",
];

pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const UCUM: &str = "http://unitsofmeasure.org";
/// Massachusetts driver's licence numbers, as Synthea writes them.
pub const DL_SYSTEM: &str = "urn:oid:2.16.840.1.113883.4.3.25";

/// Encounters, observations and the other clinical resources fall in `[START_YEAR, END_YEAR]`.
pub const START_YEAR: i32 = 2010;
pub const END_YEAR: i32 = 2025;

// --- code lists -----------------------------------------------------------------------------

/// A coded concept drawn with relative frequency `weight`.
pub struct Concept {
    pub code: &'static str,
    pub display: &'static str,
    pub weight: u32,
}

const fn c(code: &'static str, display: &'static str, weight: u32) -> Concept {
    Concept {
        code,
        display,
        weight,
    }
}

/// A LOINC observation with a numeric result in UCUM `unit`, drawn between `lo` and `hi`.
pub struct Test {
    pub code: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    pub lo: f64,
    pub hi: f64,
    pub decimals: u8,
    /// Relative frequency among vital signs (labs are drawn through their panel).
    pub weight: u32,
}

const fn t(
    code: &'static str,
    display: &'static str,
    unit: &'static str,
    lo: f64,
    hi: f64,
    decimals: u8,
    weight: u32,
) -> Test {
    Test {
        code,
        display,
        unit,
        lo,
        hi,
        decimals,
        weight,
    }
}

/// A laboratory panel: one DiagnosticReport whose `result`s are Observations of `tests`.
pub struct Panel {
    pub code: &'static str,
    pub display: &'static str,
    pub tests: &'static [Test],
    pub weight: u32,
}

const fn panel(
    code: &'static str,
    display: &'static str,
    tests: &'static [Test],
    weight: u32,
) -> Panel {
    Panel {
        code,
        display,
        tests,
        weight,
    }
}

#[rustfmt::skip]
pub const VITALS: &[Test] = &[
    t("8480-6", "Systolic blood pressure", "mm[Hg]", 95.0, 175.0, 0, 30),
    t("8462-4", "Diastolic blood pressure", "mm[Hg]", 55.0, 105.0, 0, 30),
    t("8867-4", "Heart rate", "/min", 52.0, 118.0, 0, 26),
    t("9279-1", "Respiratory rate", "/min", 12.0, 24.0, 0, 16),
    t("29463-7", "Body weight", "kg", 4.0, 140.0, 1, 24),
    t("8302-2", "Body height", "cm", 55.0, 200.0, 1, 14),
    t("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 16.0, 42.0, 2, 12),
    t("8310-5", "Body temperature", "Cel", 36.1, 38.9, 1, 10),
    t("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 91.0, 100.0, 0, 8),
    t("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 0.0, 10.0, 0, 6),
    t("8289-1", "Head Occipital-frontal circumference Percentile", "%", 1.0, 99.0, 0, 1),
];

#[rustfmt::skip]
const CBC: &[Test] = &[
    t("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 3.5, 11.5, 1, 0),
    t("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 3.9, 5.9, 2, 0),
    t("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11.0, 17.5, 1, 0),
    t("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 34.0, 52.0, 1, 0),
    t("787-2", "MCV [Entitic volume] by Automated count", "fL", 78.0, 99.0, 1, 0),
    t("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150.0, 420.0, 0, 0),
];
#[rustfmt::skip]
const BMP: &[Test] = &[
    t("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 65.0, 180.0, 0, 0),
    t("6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", 7.0, 25.0, 0, 0),
    t("38483-4", "Creatinine [Mass/volume] in Blood", "mg/dL", 0.6, 1.6, 2, 0),
    t("2947-0", "Sodium [Moles/volume] in Blood", "mmol/L", 135.0, 146.0, 0, 0),
    t("6298-4", "Potassium [Moles/volume] in Blood", "mmol/L", 3.4, 5.3, 1, 0),
    t("2069-3", "Chloride [Moles/volume] in Blood", "mmol/L", 96.0, 110.0, 0, 0),
    t("20565-8", "Carbon dioxide, total [Moles/volume] in Blood", "mmol/L", 20.0, 31.0, 0, 0),
    t("49765-1", "Calcium [Mass/volume] in Blood", "mg/dL", 8.5, 10.4, 1, 0),
];
#[rustfmt::skip]
const LIPID: &[Test] = &[
    t("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 140.0, 290.0, 0, 0),
    t("2571-8", "Triglycerides", "mg/dL", 60.0, 320.0, 0, 0),
    t("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", 60.0, 200.0, 0, 0),
    t("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 30.0, 90.0, 0, 0),
];
#[rustfmt::skip]
const HEPATIC: &[Test] = &[
    t("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 7.0, 65.0, 0, 0),
    t("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 8.0, 60.0, 0, 0),
    t("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 40.0, 150.0, 0, 0),
    t("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.1, 1.6, 1, 0),
    t("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.2, 5.2, 1, 0),
];
#[rustfmt::skip]
const URINALYSIS: &[Test] = &[
    t("5811-5", "Specific gravity of Urine by Test strip", "1", 1.005, 1.030, 3, 0),
    t("5803-2", "pH of Urine by Test strip", "[pH]", 4.5, 8.0, 1, 0),
    t("5792-7", "Glucose [Mass/volume] in Urine by Test strip", "mg/dL", 0.0, 250.0, 0, 0),
];
#[rustfmt::skip]
const HBA1C: &[Test] = &[t("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.6, 10.5, 1, 0)];
#[rustfmt::skip]
const TSH: &[Test] = &[t("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.3, 6.5, 2, 0)];
#[rustfmt::skip]
const EGFR: &[Test] = &[t("33914-3", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)", "mL/min/{1.73_m2}", 35.0, 120.0, 0, 0)];
#[rustfmt::skip]
const FERRITIN: &[Test] = &[t("2276-4", "Ferritin [Mass/volume] in Serum or Plasma", "ng/mL", 12.0, 400.0, 0, 0)];
#[rustfmt::skip]
const B12: &[Test] = &[t("2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma", "pg/mL", 180.0, 900.0, 0, 0)];
#[rustfmt::skip]
const VITD: &[Test] = &[t("1989-3", "25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma", "ng/mL", 8.0, 80.0, 1, 0)];
#[rustfmt::skip]
const INR: &[Test] = &[t("6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", 0.8, 3.5, 1, 0)];
#[rustfmt::skip]
const CRP: &[Test] = &[t("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0.2, 60.0, 1, 0)];
#[rustfmt::skip]
const PSA: &[Test] = &[t("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma", "ng/mL", 0.1, 12.0, 2, 0)];
#[rustfmt::skip]
const TROPONIN: &[Test] = &[t("10839-9", "Troponin I.cardiac [Mass/volume] in Serum or Plasma", "ng/mL", 0.0, 2.5, 2, 0)];

/// Panels by frequency; the single-test "panels" at the end are the rare labs (`_has` picks
/// its code among them).
#[rustfmt::skip]
pub const PANELS: &[Panel] = &[
    panel("51990-0", "Basic metabolic panel - Blood", BMP, 30),
    panel("58410-2", "CBC panel - Blood by Automated count", CBC, 26),
    panel("57698-3", "Lipid panel with direct LDL - Serum or Plasma", LIPID, 18),
    panel("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", HBA1C, 10),
    panel("24325-3", "Hepatic function 2000 panel - Serum or Plasma", HEPATIC, 8),
    panel("24357-6", "Urinalysis macro (dipstick) panel - Urine", URINALYSIS, 6),
    panel("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", TSH, 5),
    panel("33914-3", "Glomerular filtration rate/1.73 sq M.predicted", EGFR, 4),
    panel("2276-4", "Ferritin [Mass/volume] in Serum or Plasma", FERRITIN, 2),
    panel("2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma", B12, 2),
    panel("1989-3", "25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma", VITD, 2),
    panel("6301-6", "INR in Platelet poor plasma by Coagulation assay", INR, 1),
    panel("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", CRP, 1),
    panel("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma", PSA, 1),
    panel("10839-9", "Troponin I.cardiac [Mass/volume] in Serum or Plasma", TROPONIN, 1),
];

/// Panels at or below this weight are "rare" (a fraction of a percent of patients have one at
/// 40,000 patients).
pub const RARE_PANEL_WEIGHT: u32 = 2;

#[rustfmt::skip]
pub const CONDITIONS: &[Concept] = &[
    c("444814009", "Viral sinusitis (disorder)", 40),
    c("195662009", "Acute viral pharyngitis (disorder)", 30),
    c("10509002", "Acute bronchitis (disorder)", 26),
    c("59621000", "Essential hypertension (disorder)", 24),
    c("15777000", "Prediabetes", 18),
    c("55822004", "Hyperlipidemia", 16),
    c("162864005", "Body mass index 30+ - obesity (finding)", 16),
    c("44054006", "Diabetes mellitus type 2 (disorder)", 12),
    c("65363002", "Otitis media", 12),
    c("43878008", "Streptococcal sore throat (disorder)", 10),
    c("271737000", "Anemia (disorder)", 9),
    c("40055000", "Chronic sinusitis (disorder)", 8),
    c("444470001", "Injury of anterior cruciate ligament", 6),
    c("44465007", "Sprain of ankle", 8),
    c("70704007", "Sprain of wrist", 6),
    c("283371005", "Laceration of forearm", 5),
    c("62106007", "Concussion with no loss of consciousness", 4),
    c("58150001", "Fracture of clavicle", 3),
    c("195967001", "Asthma", 6),
    c("233678006", "Childhood asthma", 4),
    c("232353008", "Perennial allergic rhinitis with seasonal variation", 6),
    c("24079001", "Atopic dermatitis", 5),
    c("40275004", "Contact dermatitis", 4),
    c("239873007", "Osteoarthritis of knee", 6),
    c("69896004", "Rheumatoid arthritis", 2),
    c("64859006", "Osteoporosis (disorder)", 3),
    c("370143000", "Major depression disorder", 5),
    c("73595000", "Stress (finding)", 7),
    c("47505003", "Posttraumatic stress disorder", 2),
    c("49436004", "Atrial fibrillation", 3),
    c("53741008", "Coronary Heart Disease", 3),
    c("22298006", "Myocardial Infarction", 1),
    c("230690007", "Stroke", 1),
    c("13645005", "Chronic obstructive bronchitis (disorder)", 2),
    c("87433001", "Pulmonary emphysema (disorder)", 1),
    c("68496003", "Polyp of colon", 2),
    c("363406005", "Malignant neoplasm of colon", 1),
    c("254837009", "Malignant neoplasm of breast (disorder)", 1),
    c("126906006", "Neoplasm of prostate", 1),
    c("26929004", "Alzheimer's disease (disorder)", 1),
    c("84757009", "Epilepsy", 1),
    c("301011002", "Escherichia coli urinary tract infection", 3),
    c("38822007", "Cystitis", 4),
    c("72892002", "Normal pregnancy", 6),
    c("127013003", "Diabetic renal disease (disorder)", 1),
];

#[rustfmt::skip]
pub const MEDICATIONS: &[Concept] = &[
    c("313782", "Acetaminophen 325 MG Oral Tablet", 40),
    c("310965", "Ibuprofen 200 MG Oral Tablet", 30),
    c("308182", "Amoxicillin 250 MG Oral Capsule", 22),
    c("834061", "Penicillin V Potassium 250 MG Oral Tablet", 14),
    c("562251", "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", 10),
    c("314076", "lisinopril 10 MG Oral Tablet", 20),
    c("197361", "Amlodipine 5 MG Oral Tablet", 12),
    c("310798", "Hydrochlorothiazide 25 MG Oral Tablet", 12),
    c("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", 12),
    c("312961", "Simvastatin 20 MG Oral Tablet", 10),
    c("259255", "Atorvastatin 80 MG Oral Tablet", 6),
    c("1049630", "diphenhydrAMINE Hydrochloride 25 MG Oral Tablet", 8),
    c("1014676", "cetirizine hydrochloride 5 MG Oral Tablet", 8),
    c("849574", "Naproxen sodium 220 MG Oral Tablet", 8),
    c("895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler", 6),
    c("745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", 6),
    c("904419", "Alendronic acid 10 MG Oral Tablet", 3),
    c("855332", "Warfarin Sodium 5 MG Oral Tablet", 3),
    c("197604", "Digoxin 0.125 MG Oral Tablet", 2),
    c("866414", "24 HR Metoprolol Succinate 100 MG Extended Release Oral Tablet", 4),
    c("106892", "insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML Injectable Suspension", 3),
    c("748856", "Yaz 28 Day Pack", 4),
    c("1000126", "1 ML medroxyPROGESTERone acetate 150 MG/ML Injection", 2),
    c("389221", "Etonogestrel 68 MG Drug Implant", 2),
    c("1719286", "10 ML Furosemide 10 MG/ML Injection", 1),
    c("1736854", "Cisplatin 50 MG Injection", 1),
];

#[rustfmt::skip]
pub const PROCEDURES: &[Concept] = &[
    c("430193006", "Medication Reconciliation (procedure)", 40),
    c("710824005", "Assessment of health and social care needs (procedure)", 30),
    c("171207006", "Depression screening (procedure)", 20),
    c("428211000124100", "Assessment of substance use (procedure)", 16),
    c("117015009", "Throat culture (procedure)", 12),
    c("23426006", "Measurement of respiratory function (procedure)", 8),
    c("76601001", "Intramuscular injection", 8),
    c("29303009", "Electrocardiographic procedure", 8),
    c("399208008", "Plain chest X-ray (procedure)", 7),
    c("127783003", "Spirometry (procedure)", 5),
    c("71651007", "Mammography (procedure)", 6),
    c("73761001", "Colonoscopy", 5),
    c("252160004", "Standard pregnancy test", 4),
    c("274804006", "Evaluation of uterine fundal height", 3),
    c("47758006", "Hepatitis B Surface Antigen Measurement", 3),
    c("288086009", "Suture open wound", 4),
    c("274474001", "Bone immobilization", 3),
    c("169553002", "Insertion of subcutaneous contraceptive", 2),
    c("65200003", "Insertion of intrauterine contraceptive device", 2),
    c("180256009", "Subcutaneous immunotherapy", 2),
    c("15081005", "Pulmonary rehabilitation (regime/therapy)", 1),
    c("33195004", "Teleradiotherapy procedure (procedure)", 1),
];

/// Encounter types (SNOMED) with their v3 ActCode class.
#[rustfmt::skip]
pub const ENCOUNTER_TYPES: &[(Concept, &str)] = &[
    (c("185349003", "Encounter for check up (procedure)", 30), "AMB"),
    (c("162673000", "General examination of patient (procedure)", 20), "AMB"),
    (c("185345009", "Encounter for symptom", 24), "AMB"),
    (c("410620009", "Well child visit (procedure)", 10), "AMB"),
    (c("698314001", "Consultation for treatment", 6), "AMB"),
    (c("424441002", "Prenatal initial visit", 3), "AMB"),
    (c("50849002", "Emergency room admission (procedure)", 6), "EMER"),
    (c("183452005", "Emergency hospital admission (procedure)", 2), "IMP"),
];

/// Family names (weights roughly follow US frequency, with the accents real records carry).
#[rustfmt::skip]
pub const FAMILIES: &[(&str, u32)] = &[
    ("Smith", 40), ("Johnson", 32), ("Williams", 28), ("Brown", 26), ("Jones", 25),
    ("García", 22), ("Miller", 20), ("Davis", 19), ("Rodríguez", 18), ("Martínez", 17),
    ("Hernández", 16), ("López", 15), ("González", 15), ("Wilson", 14), ("Anderson", 14),
    ("Thomas", 13), ("Taylor", 13), ("Moore", 12), ("Jackson", 12), ("Martin", 12),
    ("Lee", 11), ("Pérez", 11), ("Thompson", 11), ("White", 10), ("Harris", 10),
    ("Sánchez", 10), ("Clark", 9), ("Ramírez", 9), ("Lewis", 9), ("Robinson", 9),
    ("Walker", 8), ("Young", 8), ("Allen", 8), ("King", 8), ("Wright", 8),
    ("Nguyen", 8), ("Hill", 7), ("Flores", 7), ("Green", 7), ("Adams", 7),
    ("O'Brien", 5), ("Murphy", 6), ("Sullivan", 5), ("Kowalski", 4), ("Müller", 4),
    ("Schröder", 3), ("Johansson", 3), ("Ångström", 1), ("Bergström", 2), ("Dubois", 3),
    ("Lefèvre", 2), ("Gonçalves", 3), ("Conceição", 1), ("Okafor", 3), ("Tanaka", 3),
    ("Yılmaz", 2), ("Nowak", 3), ("Novák", 2), ("Đorđević", 1), ("Papadopoulos", 2),
];

#[rustfmt::skip]
pub const GIVEN_FEMALE: &[(&str, u32)] = &[
    ("Mary", 20), ("Patricia", 14), ("Jennifer", 14), ("Linda", 12), ("Elizabeth", 12),
    ("Barbara", 10), ("Susan", 10), ("Jessica", 10), ("Sarah", 10), ("Karen", 9),
    ("María", 12), ("Sofía", 8), ("Ana", 8), ("Lucía", 5), ("Inés", 3),
    ("Chloé", 3), ("Zoë", 3), ("Renée", 2), ("Amélie", 2), ("Léa", 2),
    ("Emma", 10), ("Olivia", 10), ("Ava", 8), ("Isabella", 8), ("Mia", 7),
    ("Aisha", 4), ("Yuki", 2), ("Ngozi", 2), ("Małgorzata", 1), ("Siobhán", 2),
];

#[rustfmt::skip]
pub const GIVEN_MALE: &[(&str, u32)] = &[
    ("James", 20), ("John", 18), ("Robert", 16), ("Michael", 16), ("William", 14),
    ("David", 14), ("Richard", 10), ("Joseph", 10), ("Thomas", 10), ("Charles", 9),
    ("José", 12), ("Juan", 8), ("Luis", 7), ("Andrés", 4), ("Joaquín", 3),
    ("François", 2), ("André", 3), ("Jérôme", 2), ("Björn", 2), ("Søren", 1),
    ("Liam", 10), ("Noah", 10), ("Oliver", 8), ("Elijah", 7), ("Lucas", 7),
    ("Mateo", 5), ("Hiroshi", 2), ("Chidi", 2), ("Łukasz", 1), ("Seán", 2),
];

/// Massachusetts cities with the first three digits of their ZIP codes.
#[rustfmt::skip]
pub const CITIES: &[(&str, &str, u32)] = &[
    ("Boston", "021", 30), ("Worcester", "016", 12), ("Springfield", "011", 10),
    ("Cambridge", "021", 8), ("Lowell", "018", 7), ("Brockton", "023", 6),
    ("Quincy", "021", 6), ("Lynn", "019", 6), ("New Bedford", "027", 6),
    ("Fall River", "027", 5), ("Newton", "024", 5), ("Somerville", "021", 5),
    ("Lawrence", "018", 5), ("Framingham", "017", 4), ("Haverhill", "018", 4),
    ("Waltham", "024", 4), ("Malden", "021", 4), ("Plymouth", "023", 3),
    ("Medford", "021", 3), ("Taunton", "027", 3), ("Chicopee", "010", 3),
    ("Weymouth", "021", 3), ("Revere", "021", 3), ("Peabody", "019", 3),
    ("Methuen", "018", 2), ("Barnstable", "026", 2), ("Pittsfield", "012", 2),
    ("Attleboro", "027", 2), ("Salem", "019", 2), ("Chelsea", "021", 2),
];

#[rustfmt::skip]
const STREETS: &[&str] = &[
    "Main Street", "Washington Street", "Elm Street", "Maple Avenue", "Oak Street",
    "Pleasant Street", "Park Avenue", "High Street", "Cedar Lane", "Chestnut Street",
];

trait Weighted {
    fn weight(&self) -> u32;
}
impl Weighted for Concept {
    fn weight(&self) -> u32 {
        self.weight
    }
}
impl Weighted for Test {
    fn weight(&self) -> u32 {
        self.weight
    }
}
impl Weighted for Panel {
    fn weight(&self) -> u32 {
        self.weight
    }
}
impl Weighted for (&str, u32) {
    fn weight(&self) -> u32 {
        self.1
    }
}
impl Weighted for (&str, &str, u32) {
    fn weight(&self) -> u32 {
        self.2
    }
}
impl Weighted for (Concept, &str) {
    fn weight(&self) -> u32 {
        self.0.weight
    }
}

/// The index of an item drawn with probability proportional to its weight.
fn pick<T: Weighted>(rng: &mut StdRng, items: &[T]) -> usize {
    let total: u32 = items.iter().map(Weighted::weight).sum();
    let mut x = rng.random_range(0..total);
    for (i, it) in items.iter().enumerate() {
        if x < it.weight() {
            return i;
        }
        x -= it.weight();
    }
    items.len() - 1
}

/// Draws one of `counts` by the weights given for 0, 1, 2, …
fn count(rng: &mut StdRng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

// --- the plan of one patient ----------------------------------------------------------------

pub struct EncounterPlan {
    pub type_index: usize,
    pub start: NaiveDateTime,
    pub minutes: i64,
}

pub struct ObservationPlan {
    /// The test: `VITALS[i]` for vital signs, `PANELS[p].tests[i]` for labs.
    pub vital: bool,
    pub panel: usize,
    pub test: usize,
    pub encounter: usize,
    pub value: f64,
    pub effective: NaiveDateTime,
}

impl ObservationPlan {
    pub fn test(&self) -> &'static Test {
        if self.vital {
            &VITALS[self.test]
        } else {
            &PANELS[self.panel].tests[self.test]
        }
    }
}

pub struct ReportPlan {
    pub panel: usize,
    pub encounter: usize,
    /// Indices into `PatientPlan::observations`.
    pub results: std::ops::Range<usize>,
}

pub struct ItemPlan {
    /// Index into `CONDITIONS`, `MEDICATIONS` or `PROCEDURES`.
    pub concept: usize,
    pub encounter: usize,
    pub active: bool,
}

/// Everything about one patient, drawn from `(seed, index)` alone.
pub struct PatientPlan {
    pub index: usize,
    pub female: bool,
    pub family: &'static str,
    pub given: &'static str,
    pub birth: NaiveDate,
    pub city: usize,
    pub street_no: u32,
    pub street: usize,
    pub phone: u32,
    pub licence: u32,
    pub married: bool,
    pub encounters: Vec<EncounterPlan>,
    pub observations: Vec<ObservationPlan>,
    pub reports: Vec<ReportPlan>,
    pub conditions: Vec<ItemPlan>,
    pub medications: Vec<ItemPlan>,
    pub procedures: Vec<ItemPlan>,
}

/// splitmix64: decorrelates nearby seeds before they reach the RNG.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn patient_id(index: usize) -> String {
    format!("p-{index:06}")
}

fn child_id(prefix: char, patient: usize, k: usize) -> String {
    format!("{prefix}-{patient:06}-{k:02}")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// A uniformly drawn instant in `[from, to)`, to the second.
fn instant_between(rng: &mut StdRng, from: NaiveDate, to: NaiveDate) -> NaiveDateTime {
    let days = (to - from).num_days().max(1);
    let day = from + Duration::days(rng.random_range(0..days));
    // Clinics work in the day: 07:00-19:00.
    let secs = rng.random_range(7 * 3600..19 * 3600);
    day.and_hms_opt(0, 0, 0).expect("midnight") + Duration::seconds(secs)
}

/// A value in `[lo, hi]` leaning to the middle (mean of two uniforms), rounded.
fn value(rng: &mut StdRng, test: &Test) -> f64 {
    let u = (rng.random::<f64>() + rng.random::<f64>()) / 2.0;
    let v = test.lo + u * (test.hi - test.lo);
    let scale = 10f64.powi(i32::from(test.decimals));
    (v * scale).round() / scale
}

pub fn plan(seed: u64, index: usize) -> PatientPlan {
    let mut rng = StdRng::seed_from_u64(mix(seed ^ mix(index as u64)));
    let female = rng.random_bool(0.5);
    let family = FAMILIES[pick(&mut rng, FAMILIES)].0;
    let given = if female {
        GIVEN_FEMALE[pick(&mut rng, GIVEN_FEMALE)].0
    } else {
        GIVEN_MALE[pick(&mut rng, GIVEN_MALE)].0
    };
    let birth = instant_between(&mut rng, date(1930, 1, 1), date(2020, 12, 31)).date();
    let city = pick(&mut rng, CITIES);
    let street_no = rng.random_range(1..2000);
    let street = rng.random_range(0..STREETS.len());
    let phone = rng.random_range(0..10_000_000);
    let licence = rng.random_range(10_000_000..100_000_000);
    let married = birth.year() < 2000 && rng.random_bool(0.55);

    // Encounters between the later of birth and 2010, and the end of 2025, in time order.
    let from = birth.max(date(START_YEAR, 1, 1));
    let to = date(END_YEAR + 1, 1, 1);
    let n_enc = rng.random_range(1..=5);
    let mut encounters: Vec<EncounterPlan> = (0..n_enc)
        .map(|_| EncounterPlan {
            type_index: pick(&mut rng, ENCOUNTER_TYPES),
            start: instant_between(&mut rng, from, to),
            minutes: rng.random_range(15..=75),
        })
        .collect();
    encounters.sort_by_key(|e| e.start);

    // Vital signs at every encounter, a few distinct ones each.
    let mut observations = Vec::new();
    for (k, enc) in encounters.iter().enumerate() {
        let n = rng.random_range(2..=5);
        let mut taken = Vec::with_capacity(n);
        while taken.len() < n {
            let i = pick(&mut rng, VITALS);
            if !taken.contains(&i) {
                taken.push(i);
            }
        }
        for (j, i) in taken.into_iter().enumerate() {
            observations.push(ObservationPlan {
                vital: true,
                panel: 0,
                test: i,
                encounter: k,
                value: value(&mut rng, &VITALS[i]),
                effective: enc.start + Duration::minutes(5 + j as i64),
            });
        }
    }

    // Lab panels: each a DiagnosticReport with some of the panel's tests as its results.
    let mut reports = Vec::new();
    for _ in 0..count(&mut rng, &[28, 36, 24, 12]) {
        let panel = pick(&mut rng, PANELS);
        let encounter = rng.random_range(0..encounters.len());
        let tests = PANELS[panel].tests;
        let n = if tests.len() == 1 {
            1
        } else {
            rng.random_range(2..=tests.len().min(5))
        };
        let first = observations.len();
        let effective = encounters[encounter].start + Duration::minutes(20);
        for (i, test) in tests.iter().enumerate().take(n) {
            observations.push(ObservationPlan {
                vital: false,
                panel,
                test: i,
                encounter,
                value: value(&mut rng, test),
                effective,
            });
        }
        reports.push(ReportPlan {
            panel,
            encounter,
            results: first..observations.len(),
        });
    }

    let items = |rng: &mut StdRng, list: &[Concept], weights: &[u32], active: f64| {
        (0..count(rng, weights))
            .map(|_| ItemPlan {
                concept: pick(rng, list),
                encounter: rng.random_range(0..encounters.len()),
                active: rng.random_bool(active),
            })
            .collect::<Vec<_>>()
    };
    let conditions = items(&mut rng, CONDITIONS, &[10, 20, 24, 20, 14, 8, 4], 0.4);
    let medications = items(&mut rng, MEDICATIONS, &[12, 20, 24, 20, 14, 6, 4], 0.3);
    let procedures = items(&mut rng, PROCEDURES, &[20, 30, 28, 14, 8], 0.0);

    PatientPlan {
        index,
        female,
        family,
        given,
        birth,
        city,
        street_no,
        street,
        phone,
        licence,
        married,
        encounters,
        observations,
        reports,
        conditions,
        medications,
        procedures,
    }
}

// --- rendering ------------------------------------------------------------------------------

fn dt(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}], "text": display})
}

fn number(v: f64, decimals: u8) -> Value {
    // Written with exactly `decimals` digits, as a lab system would (`1.50`, not `1.5`).
    let text = format!("{v:.*}", usize::from(decimals));
    serde_json::from_str(&text).expect("a decimal is JSON")
}

impl PatientPlan {
    pub fn id(&self) -> String {
        patient_id(self.index)
    }

    fn subject(&self) -> Value {
        json!({"reference": format!("Patient/{}", self.id())})
    }

    fn encounter_ref(&self, k: usize) -> Value {
        json!({"reference": format!("Encounter/{}", child_id('e', self.index, k))})
    }

    pub fn observation_id(&self, k: usize) -> String {
        child_id('o', self.index, k)
    }

    /// How many resources of each type in [`TYPES`] this patient has.
    pub fn counts(&self) -> [usize; 7] {
        [
            1,
            self.encounters.len(),
            self.observations.len(),
            self.reports.len(),
            self.conditions.len(),
            self.medications.len(),
            self.procedures.len(),
        ]
    }

    /// The resources of `TYPES[type_index]`, each as one line of JSON (no newline).
    pub fn render(&self, type_index: usize) -> Vec<String> {
        let values: Vec<Value> = match TYPES[type_index] {
            "Patient" => vec![self.patient()],
            "Encounter" => (0..self.encounters.len())
                .map(|k| self.encounter(k))
                .collect(),
            "Observation" => (0..self.observations.len())
                .map(|k| self.observation(k))
                .collect(),
            "DiagnosticReport" => (0..self.reports.len()).map(|k| self.report(k)).collect(),
            "Condition" => (0..self.conditions.len())
                .map(|k| self.condition(k))
                .collect(),
            "MedicationRequest" => (0..self.medications.len())
                .map(|k| self.medication(k))
                .collect(),
            "Procedure" => (0..self.procedures.len())
                .map(|k| self.procedure(k))
                .collect(),
            other => unreachable!("unknown type {other}"),
        };
        values.into_iter().map(|v| v.to_string()).collect()
    }

    fn patient(&self) -> Value {
        let (city, zip, _) = CITIES[self.city];
        let gender = if self.female { "female" } else { "male" };
        let prefix = if self.female { "Ms." } else { "Mr." };
        let (marital, marital_display) = if self.married {
            ("M", "Married")
        } else {
            ("S", "Never Married")
        };
        json!({
            "resourceType": "Patient",
            "id": self.id(),
            "identifier": [
                {
                    "system": "https://github.com/synthetichealth/synthea",
                    "value": format!("{:016x}", mix(self.index as u64 ^ 0x5157_4e54))
                },
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical Record Number"}], "text": "Medical Record Number"},
                    "system": "http://hospital.smarthealthit.org",
                    "value": format!("MRN-{:08}", self.index)
                },
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "DL", "display": "Driver's License"}], "text": "Driver's License"},
                    "system": DL_SYSTEM,
                    "value": format!("S{}", self.licence)
                }
            ],
            "name": [{"use": "official", "family": self.family, "given": [self.given], "prefix": [prefix]}],
            "telecom": [{"system": "phone", "value": format!("555-{:03}-{:04}", self.phone / 10_000, self.phone % 10_000), "use": "home"}],
            "gender": gender,
            "birthDate": self.birth.format("%Y-%m-%d").to_string(),
            "address": [{
                "line": [format!("{} {}", self.street_no, STREETS[self.street])],
                "city": city,
                "state": "MA",
                "postalCode": format!("{zip}{:02}", self.street_no % 100),
                "country": "US"
            }],
            "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": marital, "display": marital_display}], "text": marital_display},
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US", "display": "English (United States)"}], "text": "English"}}]
        })
    }

    fn encounter(&self, k: usize) -> Value {
        let e = &self.encounters[k];
        let (concept, class) = &ENCOUNTER_TYPES[e.type_index];
        json!({
            "resourceType": "Encounter",
            "id": child_id('e', self.index, k),
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class},
            "type": [coding(SNOMED, concept.code, concept.display)],
            "subject": self.subject(),
            "period": {"start": dt(e.start), "end": dt(e.start + Duration::minutes(e.minutes))}
        })
    }

    fn observation(&self, k: usize) -> Value {
        let o = &self.observations[k];
        let test = o.test();
        let (category, category_display) = if o.vital {
            ("vital-signs", "Vital signs")
        } else {
            ("laboratory", "Laboratory")
        };
        json!({
            "resourceType": "Observation",
            "id": self.observation_id(k),
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category, "display": category_display}]}],
            "code": coding(LOINC, test.code, test.display),
            "subject": self.subject(),
            "encounter": self.encounter_ref(o.encounter),
            "effectiveDateTime": dt(o.effective),
            "issued": format!("{}.000Z", o.effective.format("%Y-%m-%dT%H:%M:%S")),
            "valueQuantity": {"value": number(o.value, test.decimals), "unit": test.unit, "system": UCUM, "code": test.unit}
        })
    }

    fn report(&self, k: usize) -> Value {
        let r = &self.reports[k];
        let panel = &PANELS[r.panel];
        let effective = self.encounters[r.encounter].start + Duration::minutes(20);
        let results: Vec<Value> = r
            .results
            .clone()
            .map(|i| json!({"reference": format!("Observation/{}", self.observation_id(i))}))
            .collect();
        json!({
            "resourceType": "DiagnosticReport",
            "id": child_id('r', self.index, k),
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB", "display": "Laboratory"}]}],
            "code": coding(LOINC, panel.code, panel.display),
            "subject": self.subject(),
            "encounter": self.encounter_ref(r.encounter),
            "effectiveDateTime": dt(effective),
            "issued": format!("{}.000Z", (effective + Duration::hours(4)).format("%Y-%m-%dT%H:%M:%S")),
            "result": results
        })
    }

    fn condition(&self, k: usize) -> Value {
        let it = &self.conditions[k];
        let concept = &CONDITIONS[it.concept];
        let onset = self.encounters[it.encounter].start;
        let status = if it.active { "active" } else { "resolved" };
        let mut v = json!({
            "resourceType": "Condition",
            "id": child_id('c', self.index, k),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis", "display": "Encounter Diagnosis"}]}],
            "code": coding(SNOMED, concept.code, concept.display),
            "subject": self.subject(),
            "encounter": self.encounter_ref(it.encounter),
            "onsetDateTime": dt(onset),
            "recordedDate": dt(onset)
        });
        if !it.active {
            v["abatementDateTime"] = json!(dt(onset + Duration::days(14)));
        }
        v
    }

    fn medication(&self, k: usize) -> Value {
        let it = &self.medications[k];
        let concept = &MEDICATIONS[it.concept];
        let status = if it.active { "active" } else { "stopped" };
        json!({
            "resourceType": "MedicationRequest",
            "id": child_id('m', self.index, k),
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": coding(RXNORM, concept.code, concept.display),
            "subject": self.subject(),
            "encounter": self.encounter_ref(it.encounter),
            "authoredOn": dt(self.encounters[it.encounter].start + Duration::minutes(30)),
            "dosageInstruction": [{
                "sequence": 1,
                "text": "Take as directed",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "asNeededBoolean": false
            }]
        })
    }

    fn procedure(&self, k: usize) -> Value {
        let it = &self.procedures[k];
        let concept = &PROCEDURES[it.concept];
        let start = self.encounters[it.encounter].start + Duration::minutes(10);
        json!({
            "resourceType": "Procedure",
            "id": child_id('x', self.index, k),
            "status": "completed",
            "code": coding(SNOMED, concept.code, concept.display),
            "subject": self.subject(),
            "encounter": self.encounter_ref(it.encounter),
            "performedPeriod": {"start": dt(start), "end": dt(start + Duration::minutes(15))}
        })
    }
}

/// Writes every resource of `patients` patients as NDJSON, type by type in [`TYPES`] order
/// (so a loader that finishes one type before the next never meets an unresolved reference).
/// Returns the number of resources written per type.
pub fn write_ndjson(
    seed: u64,
    patients: usize,
    out: &mut impl Write,
) -> std::io::Result<[usize; 7]> {
    let mut counts = [0usize; 7];
    for (ti, count) in counts.iter_mut().enumerate() {
        for i in 0..patients {
            for line in plan(seed, i).render(ti) {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                *count += 1;
            }
        }
    }
    out.flush()?;
    Ok(counts)
}

/// One patient's record as Synthea writes it for loading: a transaction Bundle whose entries
/// are all POSTs with `urn:uuid:` fullUrls, and whose references point at those fullUrls (the
/// server assigns the ids). `salt` varies the uuids, so bundles of several runs never share
/// one. Returns the Bundle's JSON and its number of entries.
pub fn transaction_bundle(seed: u64, index: usize, salt: u64) -> (String, usize) {
    let plan = plan(seed, index);
    let urn = |local: &str| {
        let h = local.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ salt, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let (a, b) = (mix(h), mix(h ^ 0x5555_5555_5555_5555));
        format!(
            "urn:uuid:{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    };
    let mut entries = Vec::new();
    for (ti, rt) in TYPES.iter().enumerate() {
        for line in plan.render(ti) {
            let mut r: Value = serde_json::from_str(&line).expect("rendered as JSON");
            let id = match r.as_object_mut().and_then(|o| o.remove("id")) {
                Some(Value::String(id)) => id,
                _ => unreachable!("every rendered resource has an id"),
            };
            point_at_full_urls(&mut r, &urn);
            entries.push(json!({
                "fullUrl": urn(&format!("{rt}/{id}")),
                "resource": r,
                "request": {"method": "POST", "url": rt},
            }));
        }
    }
    let n = entries.len();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    (bundle.to_string(), n)
}

fn point_at_full_urls(v: &mut Value, urn: &impl Fn(&str) -> String) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                match child {
                    Value::String(s) if k == "reference" => *s = urn(s),
                    _ => point_at_full_urls(child, urn),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| point_at_full_urls(c, urn)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_about_25_resources_per_patient() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let ca = write_ndjson(7, 300, &mut a).unwrap();
        let cb = write_ndjson(7, 300, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(ca, cb);
        let total: usize = ca.iter().sum();
        let per = total as f64 / 300.0;
        assert!((22.0..28.0).contains(&per), "{per} resources per patient");
        let mut c = Vec::new();
        write_ndjson(8, 300, &mut c).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn transaction_bundles_refer_by_full_url() {
        let (text, n) = transaction_bundle(7, 3, 1);
        let b: Value = serde_json::from_str(&text).unwrap();
        let entries = b["entry"].as_array().unwrap();
        assert_eq!(entries.len(), n);
        assert_eq!(n, plan(7, 3).counts().iter().sum::<usize>());
        let full: Vec<&str> = entries
            .iter()
            .map(|e| e["fullUrl"].as_str().unwrap())
            .collect();
        let text_refs = text.matches("\"reference\":\"urn:uuid:").count();
        assert!(text_refs > 0);
        for e in entries {
            assert!(e["resource"].get("id").is_none());
            if let Some(r) = e["resource"]["subject"]["reference"].as_str() {
                assert!(full.contains(&r), "{r} names an entry");
            }
        }
        assert_ne!(transaction_bundle(7, 3, 2).0, text);
    }

    #[test]
    fn lines_are_json_with_ids_and_local_references() {
        let mut out = Vec::new();
        write_ndjson(1, 50, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut ids = std::collections::HashSet::new();
        let mut seen_type = 0;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let ty = v["resourceType"].as_str().unwrap();
            let ti = TYPES.iter().position(|t| *t == ty).unwrap();
            assert!(ti >= seen_type, "types in load order");
            seen_type = ti;
            let id = format!("{ty}/{}", v["id"].as_str().unwrap());
            // Every reference points to something written before.
            for r in line.split("\"reference\":\"").skip(1) {
                let target = r.split('"').next().unwrap();
                assert!(
                    ids.contains(target),
                    "{id} refers to {target} before it exists"
                );
            }
            assert!(ids.insert(id));
        }
    }

    #[test]
    fn decimals_keep_their_digits() {
        assert_eq!(number(1.5, 2).to_string(), "1.50");
        assert_eq!(number(120.0, 0).to_string(), "120");
    }
}
