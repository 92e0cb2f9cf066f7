//! Where the data set bytes come from: a slice already in memory, or a spooled file that may be
//! far larger than what we want to hold (its bulk values are skipped with a seek, never read).

use std::fs::File;
use std::io::{BufReader, Read};

use crate::ParseError;

pub(crate) trait Source {
    /// Offset from the start of the data set stream.
    fn pos(&self) -> u64;
    fn remaining(&self) -> u64;
    /// Exactly `n` bytes, or an error naming the truncation.
    fn take(&mut self, n: usize) -> Result<&[u8], ParseError>;
    fn skip(&mut self, n: u64) -> Result<(), ParseError>;
    /// Step back over bytes just taken; only ever a few header bytes.
    fn back(&mut self, n: u64) -> Result<(), ParseError>;
}

pub(crate) fn truncated(pos: u64, wanted: u64, have: u64) -> ParseError {
    ParseError::Unreadable(format!(
        "the data set ends early: {wanted} bytes expected at offset {pos}, only {have} left"
    ))
}

pub(crate) struct SliceSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        SliceSource { data, pos: 0 }
    }
}

impl Source for SliceSource<'_> {
    #[inline]
    fn pos(&self) -> u64 {
        self.pos as u64
    }

    #[inline]
    fn remaining(&self) -> u64 {
        (self.data.len() - self.pos) as u64
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&[u8], ParseError> {
        let left = self.data.len() - self.pos;
        if n > left {
            return Err(truncated(self.pos as u64, n as u64, left as u64));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.data[start..start + n])
    }

    #[inline]
    fn skip(&mut self, n: u64) -> Result<(), ParseError> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(truncated(self.pos as u64, n, left));
        }
        self.pos += n as usize;
        Ok(())
    }

    fn back(&mut self, n: u64) -> Result<(), ParseError> {
        self.pos = self.pos.saturating_sub(n as usize);
        Ok(())
    }
}

/// A file read through a buffer, positions counted from the start of the file.
pub(crate) struct FileSource {
    reader: BufReader<File>,
    pos: u64,
    len: u64,
    scratch: Vec<u8>,
}

impl FileSource {
    /// `reader` must be at the start of the file, which is `len` bytes long.
    pub(crate) fn new(reader: BufReader<File>, len: u64) -> Self {
        FileSource {
            reader,
            pos: 0,
            len,
            scratch: Vec::new(),
        }
    }
}

fn io_error(e: std::io::Error) -> ParseError {
    ParseError::Unreadable(format!("the file could not be read: {e}"))
}

impl Source for FileSource {
    fn pos(&self) -> u64 {
        self.pos
    }

    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], ParseError> {
        let left = self.len - self.pos;
        if n as u64 > left {
            return Err(truncated(self.pos, n as u64, left));
        }
        self.scratch.clear();
        self.scratch.resize(n, 0);
        self.reader
            .read_exact(&mut self.scratch)
            .map_err(io_error)?;
        self.pos += n as u64;
        Ok(&self.scratch)
    }

    fn skip(&mut self, n: u64) -> Result<(), ParseError> {
        let left = self.len - self.pos;
        if n > left {
            return Err(truncated(self.pos, n, left));
        }
        let step = i64::try_from(n).map_err(|_| truncated(self.pos, n, left))?;
        self.reader.seek_relative(step).map_err(io_error)?;
        self.pos += n;
        Ok(())
    }

    fn back(&mut self, n: u64) -> Result<(), ParseError> {
        let n = n.min(self.pos);
        self.reader.seek_relative(-(n as i64)).map_err(io_error)?;
        self.pos -= n;
        Ok(())
    }
}
