//! Media types: reading Accept and Content-Type (with their `type` and `transfer-syntax`
//! parameters, PS3.18 8.7), and writing multipart/related bodies.

use axum::http::{HeaderMap, header};

use crate::DicomError;

/// One media range of an Accept header, or a Content-Type.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRange {
    pub essence: String,
    /// `type` of a multipart/related range, lowercased.
    pub part_type: Option<String>,
    pub transfer_syntax: Option<String>,
    pub boundary: Option<String>,
    pub q: f32,
}

pub fn parse_one(text: &str) -> MediaRange {
    let mut parts = split_params(text);
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let mut m = MediaRange {
        essence,
        part_type: None,
        transfer_syntax: None,
        boundary: None,
        q: 1.0,
    };
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "type" => m.part_type = Some(v.to_ascii_lowercase()),
            "transfer-syntax" => m.transfer_syntax = Some(v),
            "boundary" => m.boundary = Some(v),
            "q" => m.q = v.parse().unwrap_or(1.0),
            _ => {}
        }
    }
    m
}

/// Splits on `;` outside quotes.
fn split_params(text: &str) -> impl Iterator<Item = &str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter()
}

/// The acceptable media ranges of Accept in order of preference; `*/*` when there is no
/// Accept. A range with q=0 is "not acceptable" (RFC 9110 12.4.2), so it is left out, and an
/// Accept of only such ranges accepts nothing.
pub fn accept(headers: &HeaderMap) -> Vec<MediaRange> {
    let all: Vec<MediaRange> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_ranges)
        .map(parse_one)
        .collect();
    if all.is_empty() {
        return vec![parse_one("*/*")];
    }
    let mut ranges: Vec<MediaRange> = all.into_iter().filter(|m| m.q > 0.0).collect();
    // Stable: equal preferences keep the client's order.
    ranges.sort_by(|a, b| b.q.total_cmp(&a.q));
    ranges
}

/// Splits an Accept value on commas outside quotes.
fn split_ranges(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// What an instance, series or study retrieve sends.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomRetrieve {
    /// multipart/related (else a single application/dicom body, for one instance only).
    pub multipart: bool,
    /// `None` for `*`: each file as stored.
    pub transfer_syntax: Option<String>,
}

/// The transfer syntax PS3.18 makes the default for application/dicom.
pub const DEFAULT_TRANSFER_SYNTAX: &str = hds_dicom_model::EXPLICIT_VR_LITTLE_ENDIAN;

/// The representations of an instance, series or study retrieve that Accept allows, most
/// preferred first (PS3.18 8.7.8.1: the server serves the first it supports, so which can
/// be served is for the caller to find out); a 406 when none is of this resource's kind.
pub fn dicom_retrieve(headers: &HeaderMap, single: bool) -> Result<Vec<DicomRetrieve>, DicomError> {
    let ts = |m: &MediaRange| match m.transfer_syntax.as_deref() {
        Some("*") => None,
        Some(ts) => Some(ts.to_owned()),
        None => Some(DEFAULT_TRANSFER_SYNTAX.to_owned()),
    };
    let mut out = Vec::new();
    for m in accept(headers) {
        let multipart = match (m.essence.as_str(), m.part_type.as_deref()) {
            (
                "multipart/related" | "multipart/*",
                None | Some("application/dicom" | "*/*" | "*"),
            )
            | ("*/*", _) => true,
            ("application/dicom" | "application/*", _) if single => false,
            _ => continue,
        };
        let want = DicomRetrieve {
            multipart,
            transfer_syntax: ts(&m),
        };
        if !out.contains(&want) {
            out.push(want);
        }
    }
    if out.is_empty() {
        return Err(DicomError::NotAcceptable(format!(
            "a retrieve answers multipart/related; type=\"application/dicom\"{}, with an optional transfer-syntax",
            if single { " or application/dicom" } else { "" }
        )));
    }
    Ok(out)
}

/// The metadata and QIDO answers are DICOM JSON.
pub fn wants_json(headers: &HeaderMap) -> Result<(), DicomError> {
    let ok = accept(headers).iter().any(|m| {
        matches!(
            m.essence.as_str(),
            "application/dicom+json" | "application/json" | "*/*" | "application/*"
        )
    });
    if ok {
        Ok(())
    } else {
        Err(DicomError::NotAcceptable(
            "this resource is answered as application/dicom+json only".into(),
        ))
    }
}

pub fn boundary() -> String {
    format!("hds-{}", uuid::Uuid::new_v4().simple())
}

/// The bytes that open a part (the boundary line and headers).
pub fn part_head(boundary: &str, content_type: &str, location: Option<&str>) -> Vec<u8> {
    let mut s = format!("--{boundary}\r\nContent-Type: {content_type}\r\n");
    if let Some(l) = location {
        s.push_str("Content-Location: ");
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

pub fn closing(boundary: &str) -> Vec<u8> {
    format!("--{boundary}--\r\n").into_bytes()
}

pub fn multipart_type(boundary: &str, part_type: &str, transfer_syntax: Option<&str>) -> String {
    match transfer_syntax {
        Some(ts) => format!(
            "multipart/related; type=\"{part_type}\"; transfer-syntax={ts}; boundary={boundary}"
        ),
        None => format!("multipart/related; type=\"{part_type}\"; boundary={boundary}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(accept: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        m
    }

    fn first(accept: &str, single: bool) -> DicomRetrieve {
        dicom_retrieve(&h(accept), single).unwrap().remove(0)
    }

    #[test]
    fn retrieve_accepts() {
        assert_eq!(
            first(
                "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
                false
            ),
            DicomRetrieve {
                multipart: true,
                transfer_syntax: None
            }
        );
        assert_eq!(
            dicom_retrieve(&HeaderMap::new(), false).unwrap(),
            [DicomRetrieve {
                multipart: true,
                transfer_syntax: Some(DEFAULT_TRANSFER_SYNTAX.into())
            }]
        );
        assert!(!first("application/dicom", true).multipart);
        assert!(first("multipart/*", false).multipart);
        assert!(!first("application/*", true).multipart);
        assert!(dicom_retrieve(&h("application/dicom"), false).is_err());
        assert!(dicom_retrieve(&h("image/png"), true).is_err());
        assert!(
            dicom_retrieve(
                &h("multipart/related; type=\"application/octet-stream\""),
                true
            )
            .is_err()
        );
    }

    #[test]
    fn every_acceptable_range_is_offered_by_preference() {
        let got = dicom_retrieve(
            &h("multipart/related; type=\"application/dicom\"; transfer-syntax=*; q=0.1, \
                multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.90; q=0.9, \
                image/png"),
            false,
        )
        .unwrap();
        let syntaxes: Vec<_> = got.iter().map(|w| w.transfer_syntax.as_deref()).collect();
        assert_eq!(syntaxes, [Some("1.2.840.10008.1.2.4.90"), None]);
        // q=0 is "not acceptable", not "least preferred".
        assert!(dicom_retrieve(&h("application/dicom; q=0"), true).is_err());
        assert!(accept(&h("image/png; q=0")).is_empty());
        assert_eq!(accept(&HeaderMap::new())[0].essence, "*/*");
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let r = accept(&h(
            "multipart/related; type=\"application/dicom\"; q=0.5, application/dicom+json",
        ));
        assert_eq!(r[0].essence, "application/dicom+json");
        assert_eq!(r[1].part_type.as_deref(), Some("application/dicom"));
    }
}
