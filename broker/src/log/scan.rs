//! [`BatchScanner`]: walks the batches of a `.log` file front to back with positioned
//! reads through a chunk buffer, so scanning many small batches costs one read per chunk
//! rather than one per batch.
//!
//! The scanner checks only what every walk needs (a whole header that parses, a length
//! that stays inside the file); callers add their own checks (CRC, offset order). Where
//! the bytes stop making sense it reports [`Step::Torn`] with the reason, leaving the
//! decision (truncate, rebuild, error) to the caller. I/O failures are `Err`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use strom_protocol::records::{BatchHeader, BATCH_HEADER_LEN};

/// What the next step of a scan found.
#[derive(Debug)]
pub(crate) enum Step {
    /// A batch whose header parses and whose length fits the file.
    Batch {
        /// The parsed header.
        header: BatchHeader,
        /// Byte position of the batch in the file.
        position: u64,
    },
    /// The scan reached its end position exactly.
    End,
    /// The bytes at `position` are not a whole batch.
    Torn {
        /// Where the bad bytes start.
        position: u64,
        /// Why they are bad.
        reason: String,
    },
}

/// A forward walk over the batches of one file between two positions.
pub(crate) struct BatchScanner<'a> {
    file: &'a File,
    position: u64,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> BatchScanner<'a> {
    /// Scans `file` from `position` to `end`, reading `chunk` bytes at a time.
    pub(crate) fn new(file: &'a File, position: u64, end: u64, chunk: usize) -> Self {
        BatchScanner {
            file,
            position,
            end,
            chunk: chunk.max(BATCH_HEADER_LEN),
            buf: Vec::new(),
            buf_start: position,
        }
    }

    /// The next batch, without advancing past it until the following call.
    pub(crate) fn next_step(&mut self) -> io::Result<Step> {
        let position = self.position;
        let remaining = self.end.saturating_sub(position);
        if remaining == 0 {
            return Ok(Step::End);
        }
        if remaining < BATCH_HEADER_LEN as u64 {
            return Ok(torn(
                position,
                format!("partial header of {remaining} bytes"),
            ));
        }
        let header = match BatchHeader::parse(self.window(position, BATCH_HEADER_LEN)?) {
            Ok(header) => header,
            Err(e) => return Ok(torn(position, e.to_string())),
        };
        let len = header.total_len() as u64;
        if len > remaining {
            let reason = format!("batch of {len} bytes runs past the end ({remaining} left)");
            return Ok(torn(position, reason));
        }
        self.position = position + len;
        Ok(Step::Batch { header, position })
    }

    /// The bytes of the batch just returned at `position` with `header`.
    pub(crate) fn batch_bytes(&mut self, header: &BatchHeader, position: u64) -> io::Result<&[u8]> {
        self.window(position, header.total_len())
    }

    /// `len` bytes at `position`, refilling the buffer when they are not all in it.
    fn window(&mut self, position: u64, len: usize) -> io::Result<&[u8]> {
        let buffered = position >= self.buf_start
            && position + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            let want = len.max(self.chunk) as u64;
            let size = want.min(self.end.saturating_sub(position)).max(len as u64);
            self.buf.resize(usize::try_from(size).unwrap_or(len), 0);
            self.file.read_exact_at(&mut self.buf, position)?;
            self.buf_start = position;
        }
        let start = usize::try_from(position - self.buf_start).unwrap_or(0);
        Ok(&self.buf[start..start + len])
    }
}

fn torn(position: u64, reason: String) -> Step {
    Step::Torn { position, reason }
}
