//! `tsvector` values built here and sent in PostgreSQL's binary form, so that the database
//! stores a resource's words without running its text-search parser over them (that parser
//! was the largest single cost of a resource's insert; docs/benchmarks.md, "Ingest").
//!
//! The binary form (`tsvectorrecv`): the number of lexemes (i32), then per lexeme its bytes and
//! a NUL, the number of positions (u16) and each position (u16: weight in the top two bits,
//! zero here, the position in the other fourteen). PostgreSQL wants positions ascending and at
//! most 256 per lexeme; lexemes it sorts itself, but sent sorted and distinct it has nothing
//! to do.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// PostgreSQL's limits beside the lexeme length: a position (`MAXENTRYPOS` - 1; later words
/// share it, as `to_tsvector` does), positions kept per lexeme (`MAXNUMPOS`).
const MAX_POSITION: u16 = (1 << 14) - 1;
const MAX_POSITIONS: usize = 256;

/// A document's distinct lexemes, in PostgreSQL's order (byte-wise), each with its positions,
/// kept in the binary form itself: building it is a sort and one buffer, with nothing
/// allocated per word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsVector {
    /// The lexemes as `tsvectorrecv` reads them, without the leading count.
    encoded: Vec<u8>,
    count: usize,
}

impl TsVector {
    /// The longest lexeme PostgreSQL takes, in bytes (`MAXSTRLEN`).
    pub const MAX_LEXEME_BYTES: usize = 2047;

    /// The vector of `words` in document order: the first is at position 1. A word longer than
    /// PostgreSQL allows is left out, as `to_tsvector` leaves it out, but keeps its position.
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all: Vec<(&str, u16)> = words
            .into_iter()
            .enumerate()
            .filter(|(_, w)| !w.is_empty() && w.len() <= Self::MAX_LEXEME_BYTES)
            .map(|(i, w)| {
                (
                    w,
                    u16::try_from(i + 1)
                        .unwrap_or(MAX_POSITION)
                        .min(MAX_POSITION),
                )
            })
            .collect();
        // `str` orders byte-wise, as PostgreSQL orders lexemes; each word's positions follow.
        all.sort_unstable();
        let mut encoded = Vec::with_capacity(all.iter().map(|(w, _)| w.len() + 5).sum());
        let mut count = 0;
        for same in all.chunk_by(|a, b| a.0 == b.0) {
            encoded.extend_from_slice(same[0].0.as_bytes());
            encoded.push(0);
            let at = encoded.len();
            encoded.extend_from_slice(&[0, 0]);
            let mut kept: u16 = 0;
            let mut last = 0;
            for &(_, pos) in same {
                if usize::from(kept) == MAX_POSITIONS {
                    break;
                }
                if pos != last {
                    encoded.extend_from_slice(&pos.to_be_bytes());
                    kept += 1;
                    last = pos;
                }
            }
            encoded[at..at + 2].copy_from_slice(&kept.to_be_bytes());
            count += 1;
        }
        Self { encoded, count }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// The lexemes and their positions, in order.
    pub fn lexemes(&self) -> Vec<(&str, Vec<u16>)> {
        let mut out = Vec::with_capacity(self.count);
        let mut rest = self.encoded.as_slice();
        while let Some(nul) = rest.iter().position(|b| *b == 0) {
            let lexeme = std::str::from_utf8(&rest[..nul]).expect("built from str");
            let n = usize::from(u16::from_be_bytes([rest[nul + 1], rest[nul + 2]]));
            let positions = rest[nul + 3..nul + 3 + 2 * n]
                .chunks(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            out.push((lexeme, positions));
            rest = &rest[nul + 3 + 2 * n..];
        }
        out
    }
}

impl ToSql for TsVector {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_i32(i32::try_from(self.count)?);
        out.put_slice(&self.encoded);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TS_VECTOR
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(v: &TsVector) -> Vec<(String, Vec<u16>)> {
        v.lexemes()
            .into_iter()
            .map(|(l, p)| (l.to_owned(), p))
            .collect()
    }

    #[test]
    fn lexemes_are_sorted_distinct_and_keep_every_position() {
        let v = TsVector::from_words(["rate", "heart", "rate", "b", "ab"]);
        assert_eq!(
            positions(&v),
            vec![
                ("ab".into(), vec![5]),
                ("b".into(), vec![4]),
                ("heart".into(), vec![2]),
                ("rate".into(), vec![1, 3]),
            ]
        );
    }

    #[test]
    fn postgres_limits_hold() {
        let long = "x".repeat(TsVector::MAX_LEXEME_BYTES + 1);
        let many: Vec<&str> = std::iter::repeat_n("w", 20_000)
            .chain([long.as_str(), "last"])
            .collect();
        let v = TsVector::from_words(many);
        let got = positions(&v);
        assert_eq!(got.len(), 2, "the over-long word is left out");
        assert_eq!(got[0].0, "last");
        assert_eq!(got[0].1, vec![MAX_POSITION]);
        assert_eq!(got[1].1.len(), MAX_POSITIONS);
        assert!(got[1].1.windows(2).all(|w| w[0] < w[1]));
    }
}
