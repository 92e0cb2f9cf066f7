//! A STOW part too large to hold in memory, written to a file as it arrives.
//!
//! Each piece of the part is written by a blocking task while the next one fills (one copy
//! from the body's chunks into the piece; `tokio::fs::File` added a second), and its
//! writeback to the disk is started at once (`sync_file_range`), so the `syncfs` that later
//! makes the request's files durable finds little left to write. Writing 16 files of 64 MiB
//! from two threads and then syncing took 1.9–3.4 s through the page cache alone and
//! 0.6–0.7 s with writeback started per piece, as with `O_DIRECT`. Direct writes stored large
//! instances 2.5–3× faster still, but hds's first retrieve of such a file ran at half speed on
//! the benchmark machine, so they are left out until that is understood (docs/benchmarks.md).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use tempfile::TempPath;
use tokio::task::JoinHandle;

/// Bytes per write: large enough that a write is cheap against the thread hand-off it costs.
const PIECE: usize = 4 * 1024 * 1024;

type Written = std::io::Result<(File, Vec<u8>)>;

/// A part being spooled. Dropping it (a request that fails midway) removes the file.
pub(crate) struct Spool {
    path: TempPath,
    /// `None` while a write is in flight: the blocking task holds it.
    file: Option<File>,
    filling: Vec<u8>,
    spare: Option<Vec<u8>>,
    in_flight: Option<JoinHandle<Written>>,
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
            filling: Vec::with_capacity(PIECE),
            spare: None,
            in_flight: None,
            written: 0,
        })
    }

    /// Appends `bytes`, writing each full piece while the next one fills.
    pub(crate) async fn push(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let n = bytes.len().min(PIECE - self.filling.len());
            self.filling.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.filling.len() == PIECE {
                let next = self
                    .spare
                    .take()
                    .unwrap_or_else(|| Vec::with_capacity(PIECE));
                let full = std::mem::replace(&mut self.filling, next);
                self.write(full).await?;
            }
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
    async fn write(&mut self, piece: Vec<u8>) -> std::io::Result<()> {
        self.settle().await?;
        let mut file = self
            .file
            .take()
            .expect("no write is in flight after settle");
        let offset = self.written;
        self.written += piece.len() as u64;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&piece)?;
            start_writeback(&file, offset, piece.len() as u64);
            Ok((file, piece))
        }));
        Ok(())
    }

    /// Waits for the write in flight, if any, and takes back its file and buffer.
    async fn settle(&mut self) -> std::io::Result<()> {
        if let Some(task) = self.in_flight.take() {
            let (file, mut piece) = task.await.map_err(std::io::Error::other)??;
            piece.clear();
            self.file = Some(file);
            self.spare = Some(piece);
        }
        Ok(())
    }
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
            spool.push(&chunk).await.unwrap();
            expected.extend_from_slice(&chunk);
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
    }

    #[tokio::test]
    async fn a_dropped_spool_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(Some(dir.path())).unwrap();
        spool.push(&vec![1u8; PIECE + 10]).await.unwrap();
        drop(spool);
        // The write in flight may still hold its descriptor; the name is gone at once.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
