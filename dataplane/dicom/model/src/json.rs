//! Small writers for DICOM JSON text. The output is built as bytes directly because this runs on
//! every stored instance, and a `serde_json::Value` tree per element would cost more than the
//! parse itself.

use std::io::Write;

use base64::Engine;
use dicom_core::VR;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[inline]
pub(crate) fn push_tag(out: &mut Vec<u8>, tag: u32) {
    for shift in (0..8).rev() {
        out.push(HEX[((tag >> (shift * 4)) & 0xF) as usize]);
    }
}

pub(crate) fn tag_hex(tag: u32) -> String {
    let mut v = Vec::with_capacity(8);
    push_tag(&mut v, tag);
    String::from_utf8(v).unwrap_or_default()
}

/// A JSON string literal, quotes included.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0..=0x1F | 0x7F => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xF) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Opens an attribute: `"GGGGEEEE":{"vr":"XX"` (the object is left open).
#[inline]
pub(crate) fn open_attr(out: &mut Vec<u8>, tag: u32, vr: VR) {
    out.push(b'"');
    push_tag(out, tag);
    out.extend_from_slice(b"\":{\"vr\":\"");
    out.extend_from_slice(vr.to_string().as_bytes());
    out.push(b'"');
}

pub(crate) fn push_base64(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    let encoded_len = data.len().div_ceil(3) * 4;
    out.resize(start + encoded_len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(data, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

/// RFC 8259 number grammar: what may be copied from a DS or IS value verbatim.
pub(crate) fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let digits = i;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        if i == digits {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits = i;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        if i == digits {
            return false;
        }
    }
    i == b.len()
}

/// PS3.18 F.2.3 has no number form for non-finite values, so they go out as the strings that
/// fo-dicom and Azure use, which keeps them distinguishable instead of collapsing to null.
pub(crate) fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        // Debug formatting is the shortest round-trip text and switches to exponent notation
        // for very large or small magnitudes; both forms are valid JSON numbers.
        let _ = write!(out, "{v:?}");
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

pub(crate) fn push_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else {
        push_f64(out, f64::from(v));
    }
}

#[inline]
pub(crate) fn push_int<T: itoa_like::Int>(out: &mut Vec<u8>, v: T) {
    v.push_to(out);
}

/// Integer formatting without going through `fmt`, which is measurably slower per value.
pub(crate) mod itoa_like {
    pub trait Int: Copy {
        fn push_to(self, out: &mut Vec<u8>);
    }

    fn push_u128(out: &mut Vec<u8>, mut v: u128) {
        let mut buf = [0u8; 40];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        out.extend_from_slice(&buf[i..]);
    }

    macro_rules! unsigned {
        ($($t:ty),*) => {$(
            impl Int for $t {
                fn push_to(self, out: &mut Vec<u8>) {
                    push_u128(out, self as u128);
                }
            }
        )*};
    }
    macro_rules! signed {
        ($($t:ty),*) => {$(
            impl Int for $t {
                fn push_to(self, out: &mut Vec<u8>) {
                    if self < 0 {
                        out.push(b'-');
                    }
                    push_u128(out, (self as i128).unsigned_abs());
                }
            }
        )*};
    }
    unsigned!(u16, u32, u64);
    signed!(i16, i32, i64);
}

/// A DS or IS component: the text itself when it is already a JSON number, else the parsed
/// value, else the text as a string so that no value is ever dropped.
pub(crate) fn push_decimal(out: &mut Vec<u8>, text: &str, integer: bool) {
    if is_json_number(text) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    if integer {
        let digits = text.strip_prefix('+').unwrap_or(text);
        if let Ok(v) = digits.parse::<i64>() {
            push_int(out, v);
            return;
        }
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => push_f64(out, v),
        _ => push_str(out, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_grammar() {
        for ok in ["0", "-0", "1", "12.5", "1e5", "1E-5", "-0.25e+3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "+1", "01", ".5", "1.", "1e", "NaN", "1 ", "--1", "0x1"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn decimals_never_fail() {
        let mut out = Vec::new();
        push_decimal(&mut out, "+1.5", false);
        out.push(b' ');
        push_decimal(&mut out, "007", true);
        out.push(b' ');
        push_decimal(&mut out, "abc", false);
        out.push(b' ');
        push_decimal(&mut out, "NaN", false);
        assert_eq!(String::from_utf8(out).unwrap(), "1.5 7 \"abc\" \"NaN\"");
    }

    #[test]
    fn strings_escape() {
        let mut out = Vec::new();
        push_str(&mut out, "a\"b\\c\u{1}\n");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\u0001\n""#);
    }

    #[test]
    fn floats() {
        let mut out = Vec::new();
        push_f64(&mut out, f64::NAN);
        push_f64(&mut out, f64::NEG_INFINITY);
        push_f32(&mut out, 0.1);
        push_f64(&mut out, 1e300);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"NaN\"\"-Infinity\"0.11e300"
        );
    }
}
