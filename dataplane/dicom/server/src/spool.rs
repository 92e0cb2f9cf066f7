//! A STOW part too large to hold in memory, written to a file as it arrives.
//!
//! Each piece of the part (the body's chunks as they came, about 4 MiB of them) is written by a
//! blocking task with one `writev` while the next one fills, so the only copy is the kernel's
//! into the page cache (copying the chunks into a piece buffer first was a fifth of hds's CPU
//! for 64 MB instances; `tokio::fs::File` added another), and its writeback to the disk is
//! started at once (`sync_file_range`), so the `syncfs` that later
//! makes the request's files durable finds little left to write. Writing 16 files of 64 MiB
//! from two threads and then syncing took 1.9–3.4 s through the page cache alone and
//! 0.6–0.7 s with writeback started per piece, as with `O_DIRECT`. Direct writes stored large
//! instances 2.5–3× faster still, but hds's first retrieve of such a file ran at half speed on
//! the benchmark machine, so they are left out until that is understood (docs/benchmarks.md).

use std::fs::File;
use std::io::{IoSlice, Write};
use std::path::Path;

use bytes::Bytes;
use tempfile::TempPath;
use tokio::task::JoinHandle;

/// Bytes per write (at least): large enough that a write is cheap against the thread hand-off
/// it costs.
const PIECE: usize = 4 * 1024 * 1024;

/// A part being spooled. Dropping it (a request that fails midway) removes the file.
pub(crate) struct Spool {
    path: TempPath,
    /// `None` while a write is in flight: the blocking task holds it.
    file: Option<File>,
    /// The next piece's chunks, and their length.
    filling: Vec<Bytes>,
    filling_len: usize,
    in_flight: Option<JoinHandle<std::io::Result<File>>>,
    written: u64,
}

impl Spool {
    /// A new file in `dir` (created if missing), or in the system's temporary directory.
    pub(crate) fn create(dir: Option<&Path>) -> std::io::Result<Self> {
        let temp = match dir {
            // Not a dot file: the store's listing, which the orphan sweep reads, shows it.
            Some(dir) => {
                let new = || tempfile::Builder::new().prefix("part-").tempfile_in(dir);
                new().or_else(|e| {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(e);
                    }
                    std::fs::create_dir_all(dir)?;
                    new()
                })?
            }
            None => tempfile::NamedTempFile::new()?,
        };
        let (file, path) = temp.into_parts();
        Ok(Self {
            path,
            file: Some(file),
            filling: Vec::new(),
            filling_len: 0,
            in_flight: None,
            written: 0,
        })
    }

    /// Appends `chunk`, writing each full piece while the next one fills.
    pub(crate) async fn push(&mut self, chunk: Bytes) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.filling_len += chunk.len();
        self.filling.push(chunk);
        if self.filling_len >= PIECE {
            let full = std::mem::take(&mut self.filling);
            self.filling_len = 0;
            self.write(full).await?;
        }
        Ok(())
    }

    /// Writes what is left; returns the file's path and length.
    pub(crate) async fn finish(mut self) -> std::io::Result<(TempPath, u64)> {
        let last = std::mem::take(&mut self.filling);
        self.write(last).await?;
        self.settle().await?;
        Ok((self.path, self.written))
    }

    /// Starts writing `piece` once the previous write is done.
    async fn write(&mut self, piece: Vec<Bytes>) -> std::io::Result<()> {
        self.settle().await?;
        let mut file = self
            .file
            .take()
            .expect("no write is in flight after settle");
        let offset = self.written;
        let len: usize = piece.iter().map(Bytes::len).sum();
        self.written += len as u64;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            write_chunks(&mut file, &piece)?;
            start_writeback(&file, offset, len as u64);
            Ok(file)
        }));
        Ok(())
    }

    /// Waits for the write in flight, if any, and takes back its file.
    async fn settle(&mut self) -> std::io::Result<()> {
        if let Some(task) = self.in_flight.take() {
            self.file = Some(task.await.map_err(std::io::Error::other)??);
        }
        Ok(())
    }
}

/// Writes every chunk, in order, with as few `writev`s as the kernel takes (each takes at most
/// `IOV_MAX` slices; a short write goes on from where it stopped).
fn write_chunks(file: &mut File, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Asks the kernel to start writing `len` bytes at `offset` to the disk, without waiting.
/// Only a head start: durability comes from the sync before the index names the file, so a
/// failure here changes nothing.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: sync_file_range on a descriptor we own, with integer arguments only.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    async fn spooled(sizes: &[usize]) {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(Some(&dir.path().join("spool"))).unwrap();
        let mut expected = Vec::new();
        let mut byte = 0u8;
        for &n in sizes {
            let chunk: Vec<u8> = (0..n)
                .map(|_| {
                    byte = byte.wrapping_mul(31).wrapping_add(7);
                    byte
                })
                .collect();
            expected.extend_from_slice(&chunk);
            spool.push(Bytes::from(chunk)).await.unwrap();
        }
        let (path, len) = spool.finish().await.unwrap();
        assert_eq!(len, expected.len() as u64);
        let read = std::fs::read(&path).unwrap();
        assert_eq!(read.len(), expected.len());
        assert!(
            read == expected,
            "the spooled file differs from what was pushed"
        );
    }

    #[tokio::test]
    async fn a_spooled_file_holds_exactly_what_was_pushed() {
        // Empty, one byte, a page, a piece, across pieces, past the spool limit, many pieces.
        spooled(&[]).await;
        spooled(&[1]).await;
        spooled(&[4096]).await;
        spooled(&[PIECE]).await;
        spooled(&[PIECE - 1, 2, PIECE]).await;
        spooled(&[33 * 1024 * 1024, 8191, 3]).await;
        spooled(&[16 * PIECE, PIECE + 17]).await;
        // A piece of more slices than one writev takes (IOV_MAX, 1024 on Linux).
        spooled(&[1000; 5000]).await;
        spooled(&[0, 7, 0, 3]).await;
    }

    #[tokio::test]
    async fn a_dropped_spool_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(Some(dir.path())).unwrap();
        spool
            .push(Bytes::from(vec![1u8; PIECE + 10]))
            .await
            .unwrap();
        drop(spool);
        // The write in flight may still hold its descriptor; the name is gone at once.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
