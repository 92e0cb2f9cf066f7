//! UCUM canonical comparison (FHIR R4 §3.1.1.4.9): a quantity in a UCUM unit is also indexed in
//! base units, so `value-quantity=0.1|http://unitsofmeasure.org|g` finds `100 mg`. Units are
//! parsed and scaled by the `ucum-units` crate; this module decides which ones take part.

use std::cell::RefCell;
use std::collections::HashMap;

use hds_fhir_store::CanonicalQuantity;

pub const UCUM_SYSTEM: &str = "http://unitsofmeasure.org";

/// A unit's conversion to base units: `value * factor + offset` in `dimension`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub dimension: String,
    factor: f64,
    offset: f64,
}

impl Conversion {
    pub fn apply(&self, value: f64) -> f64 {
        value * self.factor + self.offset
    }
}

/// `None` for units that have no meaningful canonical form: unknown codes, arbitrary units
/// (`[IU]`, which compare with nothing), logarithmic ones (`[pH]`, `dB`), and dimensionless
/// ones (`%`, `{score}`), where a shared dimension would equate unrelated counts and ratios.
pub fn conversion(code: &str) -> Option<Conversion> {
    // Every indexed quantity asks, and a service sees few distinct units: parse each once
    // per thread rather than three times per write.
    thread_local! {
        static CACHE: RefCell<HashMap<String, Option<Conversion>>> = RefCell::new(HashMap::new());
    }
    if let Some(hit) = CACHE.with(|c| c.borrow().get(code).cloned()) {
        return hit;
    }
    let c = analyse(code);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        // Codes come from resources; bound the memory a stream of made-up ones could take.
        if cache.len() < 4096 {
            cache.insert(code.to_owned(), c.clone());
        }
    });
    c
}

fn analyse(code: &str) -> Option<Conversion> {
    if !ucum::is_comparable(code, code).ok()? {
        return None;
    }
    let a = ucum::analyze(code).ok()?;
    // Of the special units, only the affine temperatures convert linearly.
    if a.is_dimensionless || (a.is_special && a.offset == 0.0) || !a.factor.is_finite() {
        return None;
    }
    Some(Conversion {
        dimension: a.dimension.to_string(),
        factor: a.factor,
        offset: a.offset,
    })
}

/// The canonical form of an indexed quantity or range in `code` (a UCUM unit).
pub fn canonical(code: &str, lo: Option<&str>, hi: Option<&str>) -> Option<CanonicalQuantity> {
    let c = conversion(code)?;
    let conv = |v: Option<&str>| -> Option<Option<String>> {
        match v {
            None => Some(None),
            Some(v) => {
                let x: f64 = v.parse().ok()?;
                Some(Some(decimal(c.apply(x))))
            }
        }
    };
    Some(CanonicalQuantity {
        lo: conv(lo)?,
        hi: conv(hi)?,
        dimension: c.dimension,
    })
}

/// Shortest round-trip text of a float, which PostgreSQL's `numeric` accepts.
/// `1e-5` is valid `numeric` input too; non-finite values never get here.
pub fn decimal(x: f64) -> String {
    format!("{x:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_and_concentration_scale_to_base_units() {
        let mg = conversion("mg").unwrap();
        let g = conversion("g").unwrap();
        assert_eq!(mg.dimension, g.dimension);
        assert!((mg.apply(100.0) - g.apply(0.1)).abs() < 1e-12);
        let mg_dl = conversion("mg/dL").unwrap();
        let g_l = conversion("g/L").unwrap();
        assert_eq!(mg_dl.dimension, g_l.dimension);
        assert!((mg_dl.apply(100.0) - g_l.apply(1.0)).abs() < 1e-9);
    }

    #[test]
    fn temperatures_are_affine() {
        let c = conversion("Cel").unwrap();
        let f = conversion("[degF]").unwrap();
        assert_eq!(c.dimension, f.dimension);
        assert!((c.apply(37.0) - f.apply(98.6)).abs() < 1e-6);
    }

    #[test]
    fn units_without_a_useful_canonical_form_are_left_alone() {
        for code in ["[IU]", "%", "{score}", "[pH]", "not a unit", "mmHg?"] {
            assert_eq!(conversion(code), None, "{code}");
        }
        // Molar and mass concentrations are different dimensions.
        assert_ne!(
            conversion("mmol/L").unwrap().dimension,
            conversion("mg/dL").unwrap().dimension
        );
    }

    #[test]
    fn canonical_keeps_open_range_ends() {
        let c = canonical("kg", Some("70"), None).unwrap();
        assert_eq!(c.lo.as_deref(), Some("70000.0"));
        assert_eq!(c.hi, None);
        assert!(canonical("kg", Some("abc"), None).is_none());
    }
}
