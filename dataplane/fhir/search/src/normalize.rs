//! String search is case- and accent-insensitive (FHIR R4 §3.1.1.4.7): values are indexed and
//! searched in a normal form, lower case with combining marks removed after canonical
//! decomposition.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

pub fn normalize(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn case_and_accents_fold() {
        assert_eq!(normalize("Müller"), "muller");
        assert_eq!(normalize("ÉLODIE"), "elodie");
        assert_eq!(normalize("Chalmers"), "chalmers");
    }
}
